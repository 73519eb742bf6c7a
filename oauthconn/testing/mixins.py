"""``FakeProviderMixin``: a fresh fake provider for each test of a Django ``TestCase``."""

from __future__ import annotations

from typing import Any

from oauthconn.testing.provider import FakeProvider


class FakeProviderMixin:
    """Mix into a ``django.test.TestCase``: ``self.fake_provider`` is a running
    :class:`FakeProvider` during each test, closed (and the loopback setting restored)
    after it. ``fake_provider_options`` are passed to its constructor."""

    fake_provider: FakeProvider
    fake_provider_options: dict[str, Any] = {}

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]  # the TestCase this is mixed into
        self.fake_provider = FakeProvider(**self.fake_provider_options)
        self.addCleanup(self.fake_provider.close)  # type: ignore[attr-defined]

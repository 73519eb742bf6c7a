"""The pytest plugin of oauthconn (entry point ``pytest11``: ``oauthconn``).

Fixture ``oauthconn_provider``: a running :class:`~oauthconn.testing.FakeProvider` for one
test, with database access (pytest-django's ``db``; a test that asks for
``transactional_db`` or ``live_server`` too gets that instead) and
``OAUTHCONN["ALLOW_INSECURE_LOOPBACK"]`` on for that test only.

Installed with oauthconn, this module is imported by every pytest run of the environment,
Django project or not: it imports nothing from Django at import time. The fixture needs
pytest-django. ``db`` is a declared dependency, not one requested at run time, because
pytest-django creates the test databases only for the tests it sees asking for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from oauthconn.testing.provider import FakeProvider


@pytest.fixture
def oauthconn_provider(db: None) -> Iterator[FakeProvider]:
    """A fake OAuth provider on 127.0.0.1 for this test (see docs/testing-your-site.md)."""
    from oauthconn.testing.provider import FakeProvider

    with FakeProvider() as provider:
        yield provider

"""Test helpers for projects built on oauthconn (see docs/testing-your-site.md).

``FakeProvider`` is a small OAuth 2.0 / OpenID Connect provider serving real HTTP on
127.0.0.1; ``FakeProviderMixin`` puts one on a Django ``TestCase``; the pytest plugin
(``oauthconn.testing.pytest_plugin``, registered as ``oauthconn``) offers it as the
``oauthconn_provider`` fixture. Nothing in oauthconn imports this package.

The names are imported on first use (PEP 562): pytest imports the plugin, and so this
package, before Django is configured, when the models cannot be imported yet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oauthconn.testing.mixins import FakeProviderMixin
    from oauthconn.testing.provider import FakeProvider, allow_loopback
    from oauthconn.testing.server import RecordedRequest, Reply

__all__ = ["FakeProvider", "FakeProviderMixin", "RecordedRequest", "Reply", "allow_loopback"]

_WHERE = {
    "FakeProvider": "oauthconn.testing.provider",
    "allow_loopback": "oauthconn.testing.provider",
    "FakeProviderMixin": "oauthconn.testing.mixins",
    "RecordedRequest": "oauthconn.testing.server",
    "Reply": "oauthconn.testing.server",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'oauthconn.testing' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)

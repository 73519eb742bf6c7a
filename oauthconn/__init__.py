"""oauthconn: OAuth 2.0 connection management for Django.

Importing the package is cheap; the public names load their modules on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["aget_connection", "get_connection", "rate_limit", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from oauthconn.client import aget_connection, get_connection
    from oauthconn.http.ratelimit import rate_limit


def __getattr__(name: str) -> Any:
    # Lazy, so "import oauthconn" works before Django's app registry is ready.
    if name in ("get_connection", "aget_connection"):
        from oauthconn import client

        return getattr(client, name)
    if name == "rate_limit":
        from oauthconn.http.ratelimit import rate_limit

        return rate_limit
    raise AttributeError(name)

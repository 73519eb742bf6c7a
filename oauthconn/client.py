"""The public API for site code: ``get_connection(slug, owner=None)``.

>>> crm = get_connection("crm")
>>> crm.access_token                 # refreshed first when Token.needs_refresh() says so
>>> crm.get("/v1/contacts")          # relative to the API base URL, token injected
>>> with crm.client() as http: ...   # an httpx.Client bound to the connection

Tokens are only ever sent to the origin of the connection's API base URL (R41).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from oauthconn.exceptions import ConfigurationError, ConnectionNotFound
from oauthconn.flows.resource import ConnectionAuth, Grant
from oauthconn.models import Connection, Token

__all__ = ["ConnectionAuth", "ConnectionClient", "get_connection"]

if TYPE_CHECKING:
    from oauthconn.types import Owner


def get_connection(slug: str, owner: Owner = None) -> ConnectionClient:
    """The connection ``slug``; for a per-user connection, the grant of ``owner``.

    One query when the grant exists: the token row with its connection and provider, so
    ``get_connection(slug).access_token`` on a valid token costs that query and nothing else.
    """
    token = (
        Token.objects.select_related("connection__provider")
        .filter(connection__slug=slug)
        .for_owner(owner)
        .first()
    )
    connection = token.connection if token is not None else _load_connection(slug)
    if connection.per_user and owner is None:
        raise ConfigurationError(f"{slug!r} is a per-user connection: pass owner=<user>.")
    if not connection.per_user and owner is not None:
        raise ConfigurationError(f"{slug!r} is a shared connection: do not pass owner.")
    return ConnectionClient(connection, owner, token=token)


def _load_connection(slug: str) -> Connection:
    try:
        return Connection.objects.select_related("provider").get(slug=slug)
    except Connection.DoesNotExist as err:
        raise ConnectionNotFound(f"No OAuth connection with the slug {slug!r}.") from err


class ConnectionClient(Grant):
    """A connection as site code uses it. Keeps the last token in memory while it is valid.

    Tokens, the bound clients and the origin rule come from
    :class:`oauthconn.flows.resource.Grant`; this adds request shortcuts on one kept client.
    """

    def __init__(
        self, connection: Connection, owner: Owner = None, *, token: Token | None = None
    ) -> None:
        super().__init__(connection, owner, token=token)
        self._http: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"<ConnectionClient {self.connection.slug!r}>"

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        if self._http is None:
            self._http = self.client()
        return self._http.request(method, url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> ConnectionClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

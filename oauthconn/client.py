"""The public API for site code: ``get_connection(slug, owner=None)``.

>>> crm = get_connection("crm")
>>> crm.access_token                 # refreshed first when Token.needs_refresh() says so
>>> crm.get("/v1/contacts")          # relative to the API base URL, token injected
>>> with crm.client() as http: ...   # an httpx.Client bound to the connection

Tokens are only ever sent to the origin of the connection's API base URL (R41).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING, Any

import httpx
from asgiref.sync import sync_to_async

from oauthconn import flows, http
from oauthconn.exceptions import ConfigurationError, ConnectionNotFound, DisallowedResourceURL
from oauthconn.models import Connection, Token, TokenStatus

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


class ConnectionClient:
    """A connection as site code uses it. Keeps the last token in memory while it is valid."""

    def __init__(
        self, connection: Connection, owner: Owner = None, *, token: Token | None = None
    ) -> None:
        self.connection = connection
        self.owner = owner
        # A row loaded with the connection serves at once if it can; anything else (not
        # connected, needs reauthorization) goes through the flows, which raise the reason.
        self._token = token if token is not None and _serves(token) else None
        self._http: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"<ConnectionClient {self.connection.slug!r}>"

    # --- tokens -------------------------------------------------------------------------

    def token(self, *, force_refresh: bool = False) -> Token:
        """The current ``Token`` row, refreshed first when it needs it (``Token.needs_refresh``)."""
        cached = self._token
        if cached is not None and not force_refresh and not cached.needs_refresh():
            return cached
        self._token = flows.get_valid_token(
            self.connection, self.owner, force=force_refresh, stale=cached
        )
        return self._token

    @property
    def access_token(self) -> str:
        return self.token().require_access_token().reveal()

    def has_scope(self, scope: str) -> bool:
        return self.token().has_scope(scope)

    # --- HTTP ---------------------------------------------------------------------------

    def client(self, **kwargs: Any) -> httpx.Client:
        """A new ``httpx.Client`` on the API base URL that authenticates with this connection.

        Each request must end within ``REQUEST_DEADLINE`` seconds, or raises
        :class:`~oauthconn.exceptions.DeadlineExceeded`; pass ``deadline=<seconds>`` for
        calls that legitimately take longer (a large export). Other keyword arguments go to
        :func:`oauthconn.http.build_client`.
        """
        return http.build_client(base_url=self._base_url(), auth=ConnectionAuth(self), **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """The async twin of :meth:`client`, with the same deadline rule."""
        return http.build_async_client(
            base_url=self._base_url(), auth=ConnectionAuth(self), **kwargs
        )

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

    def _base_url(self) -> str:
        base = self.connection.api_base_url
        if not base:
            raise ConfigurationError(f"Connection {self.connection.slug!r} has no API base URL.")
        http.check_url(base, field="API base URL")
        return base.rstrip("/") + "/"


def _serves(token: Token) -> bool:
    return token.access_token is not None and token.status in (
        TokenStatus.ACTIVE,
        TokenStatus.FAILING,
    )


class ConnectionAuth(httpx.Auth):
    """Bearer authentication (RFC 6750 §2.1) that refreshes once and retries after a 401."""

    def __init__(self, connection: ConnectionClient) -> None:
        self.connection = connection
        base = httpx.URL(connection.connection.api_base_url)
        self.origin = (base.scheme, base.host, base.port)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        self._check_origin(request)
        token = self.connection.token()
        response = yield self._authorize(request, token)
        if self._should_retry(response):
            yield self._authorize(request, self.connection.token(force_refresh=True))

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        self._check_origin(request)
        token = await sync_to_async(self.connection.token)()
        response = yield self._authorize(request, token)
        if self._should_retry(response):
            token = await sync_to_async(self.connection.token)(force_refresh=True)
            yield self._authorize(request, token)

    def _check_origin(self, request: httpx.Request) -> None:
        url = request.url
        if (url.scheme, url.host, url.port) != self.origin:
            raise DisallowedResourceURL(
                f"Refusing to send the token of {self.connection.connection.slug!r} to "
                f"{url.scheme}://{url.host}: only its API base URL's origin is allowed."
            )

    @staticmethod
    def _authorize(request: httpx.Request, token: Token) -> httpx.Request:
        request.headers["Authorization"] = f"Bearer {token.require_access_token().reveal()}"
        return request

    @staticmethod
    def _should_retry(response: httpx.Response) -> bool:
        # RFC 6750 §3.1: insufficient_scope will not be cured by a new token.
        challenge = response.headers.get("WWW-Authenticate", "")
        return response.status_code == 401 and "insufficient_scope" not in challenge

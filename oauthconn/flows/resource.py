"""Authenticated requests to a connection's API: the one implementation.

:class:`Grant` is one owner's grant of a connection as a caller holds it: the last token it
served stays in memory while it is valid, and it asks :func:`get_valid_token` (single-flight
refresh) for a new one when due. :class:`ConnectionAuth` is the httpx ``Auth`` that sends the
bearer token only to the API base URL's origin (SECURITY R41) and, after a 401 (or a status of
the connection's ``refresh_on_status``), refreshes once and retries once; :meth:`Grant.auth`
wraps it in the connection's retries on 429 / 503 (:mod:`oauthconn.flows.retry`). The public
client (:mod:`oauthconn.client`) and the admin's "Test" (:mod:`oauthconn.flows.probe`) both
build on these, so neither rule exists twice.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Generator, Iterable
from typing import TYPE_CHECKING, Any

import httpx
from asgiref.sync import sync_to_async

from oauthconn import http
from oauthconn.base_url import grant_fields, resolve
from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import ConfigurationError, DisallowedResourceURL
from oauthconn.flows import dpop
from oauthconn.flows.retry import retrying
from oauthconn.flows.scopes import require_scopes
from oauthconn.flows.tokens import get_valid_token
from oauthconn.models import Connection, Token

if TYPE_CHECKING:
    from oauthconn.types import Owner


class Grant:
    """The grant of ``owner`` (None: the shared one) for ``connection``, with its last token."""

    def __init__(
        self, connection: Connection, owner: Owner = None, *, token: Token | None = None
    ) -> None:
        self.connection = connection
        self.owner = owner
        # A row loaded with the connection serves at once if it can; anything else (not
        # connected, needs reauthorization) goes through the flows, which raise the reason.
        self._token = token if token is not None and token.is_usable else None

    def token(self, *, force_refresh: bool = False) -> Token:
        """The current ``Token`` row, refreshed first when it needs it (``Token.needs_refresh``)."""
        cached = self._token
        if cached is not None and not force_refresh and not cached.needs_refresh():
            return cached
        self._token = get_valid_token(
            self.connection, self.owner, force=force_refresh, stale=cached
        )
        return self._token

    async def atoken(self, *, force_refresh: bool = False) -> Token:
        """The async twin of :meth:`token`.

        A token kept in memory that does not need a refresh is returned on the event loop,
        with no query and no thread hop. Otherwise one hop runs :func:`get_valid_token` (the
        same single-flight code as :meth:`token`) in Django's thread-sensitive thread: the
        refresh waits on a ``threading.Lock`` and a row lock (PostgreSQL) or a lease
        (SQLite), neither of which Django's async ORM offers, and that thread owns the
        database connection Django closes at the end of the request. So tasks, threads and
        processes asking together still cause one token request.
        """
        cached = self._token
        if cached is not None and not force_refresh and not cached.needs_refresh():
            return cached
        self._token = await sync_to_async(get_valid_token, thread_sensitive=True)(
            self.connection, self.owner, force=force_refresh, stale=cached
        )
        return self._token

    @property
    def access_token(self) -> str:
        return self.token().require_access_token().reveal()

    async def aaccess_token(self) -> str:
        """The async twin of :attr:`access_token` (a method: a property cannot be awaited)."""
        return (await self.atoken()).require_access_token().reveal()

    def has_scope(self, scope: str) -> bool:
        return self.token().has_scope(scope)

    async def ahas_scope(self, scope: str) -> bool:
        return (await self.atoken()).has_scope(scope)

    def require_scopes(self, scopes: Iterable[str], *, next: str = "") -> None:
        """Return when the grant holds every scope in ``scopes``; else raise
        :class:`~oauthconn.exceptions.ScopesRequired`: its ``missing`` scopes and its
        ``authorize_url``, a page of this site that asks the person to add them (``next``,
        a path on this site, is where they come back to). The grant keeps working meanwhile.

        Only scopes among the connection's scopes and optional scopes can be asked for
        (R66): any other raises :class:`~oauthconn.exceptions.ScopeNotAllowed`.
        """
        require_scopes(self.connection, self.token(), scopes, next=next)

    async def arequire_scopes(self, scopes: Iterable[str], *, next: str = "") -> None:
        """The async twin of :meth:`require_scopes`; no hop while the token is valid."""
        require_scopes(self.connection, await self.atoken(), scopes, next=next)

    def api_base_url(self) -> str:
        """The API base URL, checked against the URL policy, ending in ``/``."""
        return str(self.base_url())

    def base_url(self) -> httpx.URL:
        """:meth:`api_base_url` parsed (parsed and checked once per process per value).

        With per-grant fields (``{token:...}``, ``{ask:...}``) it is the URL this owner's
        grant resolves to, so it needs the grant's row (refreshed first when due).
        """
        template = self.connection.api_base_url
        if not template:
            raise ConfigurationError(f"Connection {self.connection.slug!r} has no API base URL.")
        if not grant_fields(template):
            return _checked_base_url(template, bool(oauthconn_settings.ALLOW_INSECURE_LOOPBACK))
        return self.base_url_of(self.token())

    async def abase_url(self) -> httpx.URL:
        """The async twin of :meth:`base_url`: the grant's row (through :meth:`atoken`) only
        when the URL has per-grant fields."""
        template = self.connection.api_base_url
        if template and grant_fields(template):
            return self.base_url_of(await self.atoken())
        return self.base_url()

    def base_url_of(self, token: Token) -> httpx.URL:
        """The API base URL that ``token``'s grant values resolve to (GrantValueRefused)."""
        values = tuple(sorted(token.base_values.items()))
        return _resolved_base_url(
            self.connection.api_base_url, values, bool(oauthconn_settings.ALLOW_INSECURE_LOOPBACK)
        )

    def client(self, **kwargs: Any) -> httpx.Client:
        """A new ``httpx.Client`` on the API base URL that authenticates with this grant.

        Its connections come from the process's pool for the API's origin
        (:func:`oauthconn.http.build_pooled_client`): closing it keeps them for the next
        client. Each request must end within ``REQUEST_DEADLINE`` seconds, or raises
        :class:`~oauthconn.exceptions.DeadlineExceeded`; pass ``deadline=<seconds>`` for
        calls that legitimately take longer (a large export). Other keyword arguments go to
        :func:`oauthconn.http.build_client`.
        """
        base_url = self.api_base_url()
        auth = self.auth(deadline=kwargs.get("deadline"))
        return http.build_pooled_client(base_url=base_url, auth=auth, **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """The async twin of :meth:`client` (a pool per event loop), same deadline rule."""
        base_url = self.api_base_url()
        auth = self.auth(deadline=kwargs.get("deadline"))
        return http.build_pooled_async_client(base_url=base_url, auth=auth, **kwargs)

    def auth(self, *, deadline: float | None = None) -> httpx.Auth:
        """The httpx ``Auth`` of this grant: :class:`ConnectionAuth` within the connection's
        retries on 429 / 503 (docs/calls.md), whose waits end before ``deadline``."""
        return retrying(ConnectionAuth(self), self.connection, deadline=deadline)


@functools.lru_cache(maxsize=256)
def _checked_base_url(base: str, allow_insecure_loopback: bool) -> httpx.URL:
    # The policy's only setting is part of the key; a refused URL raises and is not cached.
    http.check_url(base, field="API base URL")
    return httpx.URL(base.rstrip("/") + "/")


@functools.lru_cache(maxsize=1024)
def _resolved_base_url(
    template: str, values: tuple[tuple[str, Any], ...], allow_insecure_loopback: bool
) -> httpx.URL:
    # Same key rule as above; a refused value raises and is not cached.
    return httpx.URL(resolve(template, dict(values)).rstrip("/") + "/")


@functools.lru_cache(maxsize=256)
def _origin(url: str) -> tuple[str, str, int | None]:
    parsed = httpx.URL(url)
    return (parsed.scheme, parsed.host, parsed.port)


class ConnectionAuth(httpx.Auth):
    """Bearer (RFC 6750 §2.1) or DPoP (RFC 9449 §7) authentication that refreshes once and
    retries after a 401, or a status the connection lists in ``refresh_on_status`` (APIs that
    answer 403 for an expired token); a DPoP resource's nonce challenge is answered once first
    (§9)."""

    def __init__(self, grant: Grant) -> None:
        self.grant = grant
        template = grant.connection.api_base_url
        # Without per-grant fields the origin is the connection's, known before any token;
        # with them it is the grant's own, judged with the very token about to be sent.
        self.origin = None if grant_fields(template) else _origin(template)
        extra = grant.connection.refresh_on_status or []
        self.refresh_on = frozenset({401, *(code for code in extra if isinstance(code, int))})

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        self._check_origin(request)
        token = self.grant.token()
        response = yield self._authorize(request, token)
        if dpop.wants_nonce(response, token):
            response = yield self._authorize(request, token)  # RFC 9449 §9: once
            dpop.raise_if_nonce_refused(response, token)
        if self._should_retry(response):
            yield self._authorize(request, self.grant.token(force_refresh=True))

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        self._check_origin(request)
        # No thread hop while the grant's token is valid (Grant.atoken).
        token = await self.grant.atoken()
        response = yield self._authorize(request, token)
        if dpop.wants_nonce(response, token):
            response = yield self._authorize(request, token)  # RFC 9449 §9: once
            dpop.raise_if_nonce_refused(response, token)
        if self._should_retry(response):
            yield self._authorize(request, await self.grant.atoken(force_refresh=True))

    def _check_origin(self, request: httpx.Request, token: Token | None = None) -> None:
        if self.origin is not None:
            origin = self.origin
        elif token is not None:
            origin = _origin(str(self.grant.base_url_of(token)))
        else:
            return  # a per-grant origin: _authorize checks it once the token is known
        url = request.url
        if (url.scheme, url.host, url.port) != origin:
            raise DisallowedResourceURL(
                f"Refusing to send the token of {self.grant.connection.slug!r} to "
                f"{url.scheme}://{url.host}: only its API base URL's origin is allowed."
            )

    def _authorize(self, request: httpx.Request, token: Token) -> httpx.Request:
        if self.origin is None:
            self._check_origin(request, token)  # R41, R63: this grant's resolved origin
        dpop.authorize(request, token)  # Bearer, or DPoP with a fresh proof (R52)
        return request

    def _should_retry(self, response: httpx.Response) -> bool:
        # RFC 6750 §3.1: insufficient_scope will not be cured by a new token.
        challenge = response.headers.get("WWW-Authenticate", "")
        return response.status_code in self.refresh_on and "insufficient_scope" not in challenge

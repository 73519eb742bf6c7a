"""The public API for site code: ``get_connection(slug, owner=None)``.

>>> crm = get_connection("crm")
>>> crm.access_token                 # refreshed first when Token.needs_refresh() says so
>>> crm.get("/v1/contacts")          # relative to the API base URL, token injected
>>> crm.get("/v1/contacts", retry=True)          # retry 429 / 503 for this call (docs/calls.md)
>>> crm.post("/v1/orders", json=o, idempotent=True)  # a POST that may be sent twice
>>> with crm.client() as http: ...   # an httpx.Client bound to the connection

In async code, the same with Django's ``a`` prefix (docs/async.md):

>>> crm = await aget_connection("crm")
>>> await crm.aaccess_token()
>>> await crm.aget("/v1/contacts")

Tokens are only ever sent to the origin of the connection's API base URL (R41).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
from asgiref.sync import sync_to_async

from oauthconn import http
from oauthconn.flows.lookup import load_grant
from oauthconn.flows.resource import ConnectionAuth, Grant
from oauthconn.flows.retry import call_extensions
from oauthconn.models import Connection, Token
from oauthconn.models.owners import check_owner

__all__ = ["ConnectionAuth", "ConnectionClient", "aget_connection", "get_connection"]

if TYPE_CHECKING:
    from oauthconn.types import Owner


def get_connection(slug: str, owner: Owner = None) -> ConnectionClient:
    """The connection ``slug``; for a per-user connection, the grant of ``owner`` (a user);
    for a per-owner connection, of ``owner`` (an ``OAUTHCONN["OWNER_MODEL"]`` instance).

    One query: the connection with its provider and the owner's token row, so
    ``get_connection(slug).access_token`` on a valid token costs that query and nothing else
    (see :mod:`oauthconn.flows.lookup` for what is cached per process, and why it is never
    stale). Raises :class:`~oauthconn.exceptions.ConnectionNotFound` for an unknown slug.
    """
    connection, token = load_grant(slug, owner)
    check_owner(connection, owner)  # ConfigurationError: an owner of the wrong kind
    return ConnectionClient(connection, owner, token=token)


async def aget_connection(slug: str, owner: Owner = None) -> ConnectionClient:
    """The async twin of :func:`get_connection`: same query, same errors, and the loop is
    not blocked while it runs.

    The lookup is one raw cursor statement (:mod:`oauthconn.flows.lookup`). Django 5.2 has
    no async database driver: its async ORM (``aget``, ``afirst``) runs the sync query in
    ``sync_to_async(thread_sensitive=True)`` itself, and would give up the prepared
    statement and the per-process cache. So this makes the same single hop, explicitly, for
    the whole lookup. ``thread_sensitive=True`` as Django does: the query runs on the thread
    that owns the request's database connection, which Django closes when the request ends
    (a pool thread's connection would stay open and uncounted), and inside an
    ``async_to_sync`` caller's transaction. A token that is valid comes back with the
    connection, so using it needs no further hop (:meth:`Grant.atoken`).
    """
    return await sync_to_async(get_connection, thread_sensitive=True)(slug, owner)


class ConnectionClient(Grant):
    """A connection as site code uses it. Keeps the last token in memory while it is valid.

    Tokens, the bound clients and the origin rule come from
    :class:`oauthconn.flows.resource.Grant`; this adds request shortcuts. They share the
    process's client for the API's origin (:func:`oauthconn.http.shared_client`) and send
    this grant's token with each request, so ``get_connection(slug).get(path)`` in every
    request reuses kept-alive connections. No cookies are kept between calls.
    """

    def __init__(
        self, connection: Connection, owner: Owner = None, *, token: Token | None = None
    ) -> None:
        super().__init__(connection, owner, token=token)
        self._auth: httpx.Auth | None = None

    def __repr__(self) -> str:
        return f"<ConnectionClient {self.connection.slug!r}>"

    def request(
        self,
        method: str,
        url: str,
        *,
        retry: bool | None = None,
        idempotent: bool | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send ``method`` to ``url``, relative to the API base URL, with this grant's token.

        ``retry`` turns the retries on 429 / 503 on or off for this call (default: the
        connection's ``retry_rate_limited``); ``idempotent=True`` lets a POST or PATCH be
        retried (never by default). A call that stops retrying on 429 / 503 raises
        :class:`~oauthconn.exceptions.RateLimited` / ``RetriesExhausted``; see docs/calls.md.
        """
        base = self.base_url()
        target, kwargs = self._prepared(base, url, retry, idempotent, kwargs)
        return http.shared_client(base).request(method, target, **kwargs)

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

    async def arequest(
        self,
        method: str,
        url: str,
        *,
        retry: bool | None = None,
        idempotent: bool | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """The async twin of :meth:`request`, on the running loop's shared client for the
        API's origin (:func:`oauthconn.http.shared_async_client`); same origin rule (R41),
        deadline, refresh-once-retry after a 401 and retries on 429 / 503."""
        base = await self.abase_url()
        target, kwargs = self._prepared(base, url, retry, idempotent, kwargs)
        return await http.shared_async_client(base).request(method, target, **kwargs)

    def _prepared(
        self,
        base: httpx.URL,
        url: str,
        retry: bool | None,
        idempotent: bool | None,
        kwargs: dict[str, Any],
    ) -> tuple[httpx.URL, dict[str, Any]]:
        """The target URL and the request's keyword arguments, with this grant's auth and the
        call's retry choices (one place for :meth:`request` and :meth:`arequest`)."""
        if self._auth is None:
            self._auth = self.auth()
        if retry is not None or idempotent is not None:
            extensions = kwargs.pop("extensions", None) or {}
            kwargs["extensions"] = {**extensions, **call_extensions(retry, idempotent)}
        return _join(base, url), {**kwargs, "auth": self._auth}

    async def aget(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.arequest("GET", url, **kwargs)

    async def apost(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.arequest("POST", url, **kwargs)

    async def aput(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.arequest("PUT", url, **kwargs)

    async def apatch(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.arequest("PATCH", url, **kwargs)

    async def adelete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.arequest("DELETE", url, **kwargs)

    def close(self) -> None:
        """Nothing to release: the connections belong to the process's pool."""

    def __enter__(self) -> ConnectionClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def aclose(self) -> None:
        """Nothing to release: the connections belong to the event loop's pool."""

    async def __aenter__(self) -> ConnectionClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _join(base: httpx.URL, url: str | httpx.URL) -> httpx.URL:
    """``url`` relative to ``base`` as an ``httpx.Client(base_url=base)`` would resolve it:
    a leading ``/`` does not escape the base path."""
    target = httpx.URL(url)
    if not target.is_relative_url:
        return target
    return base.copy_with(raw_path=base.raw_path + target.raw_path.lstrip(b"/"))

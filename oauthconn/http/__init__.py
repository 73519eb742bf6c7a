"""The one factory for outbound HTTP clients, and the SSRF guard under it (SECURITY R46, R47).

Nothing else in oauthconn constructs an ``httpx.Client``: token, revocation, discovery, JWKS
and resource calls all go through :func:`build_client` / :func:`build_async_client`, so every
one of them gets the same timeouts, User-Agent, TLS verification, no redirects, and the SSRF
guard. Their transports give every request an absolute deadline (``REQUEST_DEADLINE``, or a
client's ``deadline=``) that holds whatever phase the server stalls in; see
:mod:`oauthconn.http.deadline`. :func:`send` adds a cap on the decoded size of the body.

How the SSRF guard works: httpcore opens TCP connections through a *network backend*. Ours
(:class:`GuardedBackend`, :class:`AsyncGuardedBackend`) resolves the host once, refuses the
connection if any resolved address is private, loopback, link-local, reserved or multicast,
and connects to the validated IP itself, so a DNS answer that changes between "check" and
"connect" (rebinding) cannot slip through. httpcore starts TLS afterwards with the URL's host
name, so SNI, certificate checks and the ``Host`` header stay those of the original name.

Pinned internals: httpx 0.28 keeps the httpcore pool in ``HTTPTransport._pool`` and the pool
keeps its backend in ``_network_backend``. :class:`GuardedTransport` refuses to start if
that layout changes (an httpx upgrade then fails loudly instead of silently dropping the
guard), and ``tests/test_http.py`` covers it.

Proxies from the environment (``HTTPS_PROXY``...) are ignored (``trust_env=False``): the guard
checks the address we connect to, which behind a proxy would be the proxy's, not the
destination's. Deployments that must use an egress proxy should enforce the policy there.
"""

from __future__ import annotations

import functools
import ssl
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import certifi
import httpx

from oauthconn.conf import oauthconn_settings
from oauthconn.http import pool
from oauthconn.http.bounded import MAX_RETRY_AFTER, BoundedResponse, parse_retry_after, send
from oauthconn.http.guard import (
    AsyncGuardedBackend,
    AsyncGuardedTransport,
    GuardedBackend,
    GuardedTransport,
)
from oauthconn.http.policy import check_url, destination_allowed, is_public_address

__all__ = [
    "MAX_RETRY_AFTER",
    "AsyncGuardedBackend",
    "AsyncGuardedTransport",
    "BoundedResponse",
    "GuardedBackend",
    "GuardedTransport",
    "build_async_client",
    "build_client",
    "build_pooled_async_client",
    "build_pooled_client",
    "check_url",
    "destination_allowed",
    "is_public_address",
    "parse_retry_after",
    "send",
    "shared_async_client",
    "shared_client",
]

_FORBIDDEN_KWARGS = frozenset({"verify", "transport", "mounts", "proxy", "trust_env", "app"})

# --- client factory --------------------------------------------------------------------------


def _client_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The options shared by the sync and async clients, read from settings now."""
    forbidden = _FORBIDDEN_KWARGS.intersection(kwargs)
    if forbidden:
        raise TypeError(
            f"build_client() does not accept {sorted(forbidden)}: TLS verification, the SSRF "
            "guard and proxy settings are fixed (configure OAUTHCONN['CA_BUNDLE'] instead)."
        )
    s = oauthconn_settings
    headers = httpx.Headers({"User-Agent": s.USER_AGENT})
    headers.update(kwargs.pop("headers", None) or {})
    options: dict[str, Any] = {
        "timeout": httpx.Timeout(
            connect=s.CONNECT_TIMEOUT,
            read=s.READ_TIMEOUT,
            write=s.READ_TIMEOUT,
            pool=s.CONNECT_TIMEOUT,
        ),
        "follow_redirects": False,
        "trust_env": False,
        "headers": headers,
    }
    options.update(kwargs)
    return options


def _ssl_context() -> ssl.SSLContext:
    bundle = oauthconn_settings.CA_BUNDLE
    return _ssl_context_for(str(bundle) if bundle else None)


@functools.lru_cache(maxsize=4)
def _ssl_context_for(bundle: str | None) -> ssl.SSLContext:
    # Loading a CA store costs milliseconds; one context per bundle serves every client
    # (contexts are safe to share). A context, not verify=<path>: httpx 0.28 deprecates paths.
    return ssl.create_default_context(cafile=bundle or certifi.where())


def build_client(
    *,
    base_url: str = "",
    auth: httpx.Auth | None = None,
    deadline: float | None = None,
    **kwargs: Any,
) -> httpx.Client:
    """Return an ``httpx.Client`` with oauthconn's hardening (R46, R47, R2).

    Timeouts from ``CONNECT_TIMEOUT`` / ``READ_TIMEOUT``, and for each request as a whole
    ``deadline`` seconds (default: ``REQUEST_DEADLINE``, read when the request starts); a
    request still running then raises :class:`~oauthconn.exceptions.DeadlineExceeded`. No
    redirects (callers may opt in with ``follow_redirects=True``; every hop still goes
    through the SSRF guard), ``USER_AGENT``, certificates verified against ``CA_BUNDLE`` or
    the default store. Other keyword arguments go to ``httpx.Client``; those that would
    weaken TLS, the guard or the proxy policy raise ``TypeError``.
    """
    options = _client_options(kwargs)
    transport = GuardedTransport(verify=_ssl_context(), deadline=_positive(deadline))
    return httpx.Client(base_url=base_url, auth=auth, transport=transport, **options)


def build_async_client(
    *,
    base_url: str = "",
    auth: httpx.Auth | None = None,
    deadline: float | None = None,
    **kwargs: Any,
) -> httpx.AsyncClient:
    """The async twin of :func:`build_client`, with the async SSRF guard and deadline."""
    options = _client_options(kwargs)
    transport = AsyncGuardedTransport(verify=_ssl_context(), deadline=_positive(deadline))
    return httpx.AsyncClient(base_url=base_url, auth=auth, transport=transport, **options)


def _positive(deadline: float | None) -> float | None:
    if deadline is not None and not deadline > 0:
        raise ValueError(f"deadline must be a positive number of seconds, not {deadline!r}.")
    return deadline


# --- pooled variants: sockets shared per origin across the process ---------------------------


def build_pooled_client(
    *, base_url: str, auth: httpx.Auth | None = None, deadline: float | None = None, **kwargs: Any
) -> httpx.Client:
    """Like :func:`build_client`, but its connections come from the process's pool for
    ``base_url``'s origin (:mod:`oauthconn.http.pool`), so consecutive clients reuse them.

    Closing the client leaves the pool open. Everything per request (``auth``, headers,
    cookies) stays in the client; the pool holds sockets only.
    """
    options = _client_options(kwargs)
    transport = pool.SharedTransport(_sync_pool(httpx.URL(base_url), _positive(deadline)))
    return httpx.Client(base_url=base_url, auth=auth, transport=transport, **options)


def build_pooled_async_client(
    *, base_url: str, auth: httpx.Auth | None = None, deadline: float | None = None, **kwargs: Any
) -> httpx.AsyncClient:
    """The async twin of :func:`build_pooled_client`: one pool per origin per event loop."""
    options = _client_options(kwargs)
    deadline = _positive(deadline)
    key = pool.pool_key(_origin(httpx.URL(base_url)), deadline)
    context = _ssl_context()

    def build() -> httpx.AsyncBaseTransport:
        return AsyncGuardedTransport(verify=context, deadline=deadline)

    transport = pool.SharedAsyncTransport(key, build)
    return httpx.AsyncClient(base_url=base_url, auth=auth, transport=transport, **options)


def shared_client(url: httpx.URL) -> httpx.Client:
    """A process-wide client on the pool of ``url``'s origin, for one-off authenticated calls.

    Building an ``httpx.Client`` costs more than a request on a kept connection, so callers
    that send one request per object (``get_connection(slug).get(path)``) share this one and
    pass their own ``auth`` with each request. It keeps no cookies: it serves every grant.
    """
    key = (*pool.pool_key(_origin(url), None), "client", oauthconn_settings.USER_AGENT)
    return pool.shared_transport(key, lambda: _cookieless_client(url))


def shared_async_client(url: httpx.URL) -> httpx.AsyncClient:
    """The async twin of :func:`shared_client`: one per origin per running event loop.

    An asyncio socket belongs to its loop, so each loop gets its own client on its own pool
    (:func:`oauthconn.http.pool.shared_per_loop`); both are closed by ``aclose_pools()`` (an
    ASGI lifespan shutdown) or at exit for a loop that is not running.
    """
    key = (*pool.pool_key(_origin(url), None), "async-client", oauthconn_settings.USER_AGENT)
    client: httpx.AsyncClient = pool.shared_per_loop(key, lambda: _cookieless_async_client(url))
    return client


class NoCookies(CookieJar):
    """A cookie jar that keeps nothing, for clients that serve many grants: a cookie one
    grant's response set must never go out with another grant's request."""

    def __init__(self) -> None:
        super().__init__(DefaultCookiePolicy(allowed_domains=[]))

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: Any) -> None:
        return None


def _cookieless_async_client(url: httpx.URL) -> httpx.AsyncClient:
    options = _client_options({"cookies": NoCookies()})
    key = pool.pool_key(_origin(url), None)
    context = _ssl_context()

    def build() -> httpx.AsyncBaseTransport:
        return AsyncGuardedTransport(verify=context, deadline=None)

    return httpx.AsyncClient(transport=pool.SharedAsyncTransport(key, build), **options)


def _cookieless_client(url: httpx.URL) -> httpx.Client:
    options = _client_options({"cookies": NoCookies()})
    transport = pool.SharedTransport(_sync_pool(url, None))
    return httpx.Client(transport=transport, **options)


def _sync_pool(url: httpx.URL, deadline: float | None) -> httpx.BaseTransport:
    context = _ssl_context()
    return pool.shared_transport(
        pool.pool_key(_origin(url), deadline),
        lambda: GuardedTransport(verify=context, deadline=deadline),
    )


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return (url.scheme, url.host, url.port)

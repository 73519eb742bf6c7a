"""The SSRF guard: an httpcore network backend that resolves once, validates, connects to the IP.

httpcore opens TCP connections through a *network backend*. Ours refuses the connection if
any resolved address is private, loopback, link-local, reserved or multicast (see
:mod:`oauthconn.http.policy`), and connects to the validated IP itself, so a DNS answer that
changes between "check" and "connect" (rebinding) cannot slip through. httpcore starts TLS
afterwards with the URL's host name, so SNI, certificate checks and ``Host`` stay the
original name's.

Pinned internals: httpx 0.28 keeps the httpcore pool in ``HTTPTransport._pool`` and the pool
keeps its backend in ``_network_backend``. :class:`GuardedTransport` refuses to start if that
layout changes (an httpx upgrade then fails loudly instead of silently dropping the guard).
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpcore
import httpx

from oauthconn.exceptions import BlockedDestination
from oauthconn.http.deadline import (
    AsyncDeadlineBody,
    AsyncDeadlineStream,
    Budget,
    DeadlineBody,
    DeadlineStream,
    bounded,
    cap_pool_timeout,
    expire,
    running,
    translated,
)
from oauthconn.http.policy import validated_addresses


class GuardedBackend(httpcore.NetworkBackend):
    """A sync httpcore backend that resolves once, validates, and connects to the IP."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self.inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            # getaddrinfo has no timeout of its own; the OS resolver's applies.
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as err:
            raise httpcore.ConnectError(f"cannot resolve {host}") from err
        last_error: Exception | None = None
        for ip in validated_addresses(host, port, infos):
            limit, budget = bounded(timeout, httpcore.ConnectTimeout)
            try:
                stream = self.inner.connect_tcp(ip, port, limit, local_address, socket_options)
                return DeadlineStream(stream)
            except httpcore.ConnectTimeout as err:
                expire(budget)
                last_error = err
            except httpcore.ConnectError as err:
                last_error = err
        assert last_error is not None
        raise last_error

    def connect_unix_socket(self, path: str, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise BlockedDestination("Unix sockets are not allowed destinations.")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    """The async twin of :class:`GuardedBackend`, over anyio (asyncio or trio)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(bounded(timeout, httpcore.ConnectTimeout)[0]):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as err:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from err
        except (OSError, UnicodeError) as err:
            raise httpcore.ConnectError(f"cannot resolve {host}") from err
        last_error: Exception | None = None
        for ip in validated_addresses(host, port, infos):
            limit, budget = bounded(timeout, httpcore.ConnectTimeout)
            try:
                stream = await self.inner.connect_tcp(
                    ip, port, limit, local_address, socket_options
                )
                return AsyncDeadlineStream(stream)
            except httpcore.ConnectTimeout as err:
                expire(budget)
                last_error = err
            except httpcore.ConnectError as err:
                last_error = err
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self, path: str, *args: Any, **kwargs: Any
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedDestination("Unix sockets are not allowed destinations.")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def _install_backend(
    transport: httpx.BaseTransport | httpx.AsyncBaseTransport,
    backend: httpcore.NetworkBackend | httpcore.AsyncNetworkBackend,
) -> None:
    # httpx 0.28 / httpcore 1.0 layout, pinned on purpose (see the module docstring).
    pool = getattr(transport, "_pool", None)
    if not isinstance(pool, httpcore.ConnectionPool | httpcore.AsyncConnectionPool) or not hasattr(
        pool, "_network_backend"
    ):
        raise RuntimeError(
            "oauthconn cannot install its SSRF guard: httpx's transport internals changed "
            f"(httpx {httpx.__version__}). Pin httpx to a supported version."
        )
    pool._network_backend = backend


class GuardedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connections go through :class:`GuardedBackend`.

    Each request gets an absolute deadline: ``deadline`` seconds, or ``REQUEST_DEADLINE``
    read when the request starts. It covers the wait for a pooled connection, connect, TLS,
    sending, and reading the status line, headers and body (see :mod:`.deadline`).
    """

    def __init__(self, *, deadline: float | None = None, **kwargs: Any) -> None:
        super().__init__(trust_env=False, **kwargs)
        _install_backend(self, GuardedBackend())
        self.deadline = deadline

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        budget = Budget.starting_now(self.deadline)
        with _request_scope(request, budget):
            response = super().handle_request(request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = DeadlineBody(response.stream, budget, request)
        return response


class AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` over :class:`AsyncGuardedBackend`, with the same deadline."""

    def __init__(self, *, deadline: float | None = None, **kwargs: Any) -> None:
        super().__init__(trust_env=False, **kwargs)
        _install_backend(self, AsyncGuardedBackend())
        self.deadline = deadline

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        budget = Budget.starting_now(self.deadline)
        with _request_scope(request, budget):
            response = await super().handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = AsyncDeadlineBody(response.stream, budget, request)
        return response


@contextmanager
def _request_scope(request: httpx.Request, budget: Budget) -> Iterator[None]:
    """Send ``request`` (up to its headers) with ``budget`` as the deadline."""
    original = request.extensions
    # A copy, put back afterwards: an auth flow may send this request object again, and the
    # retry gets a budget of its own.
    request.extensions = cap_pool_timeout(request, budget)
    try:
        with running(budget), translated(budget, request):
            yield
    finally:
        request.extensions = original

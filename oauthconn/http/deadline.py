"""One absolute deadline per outbound request, enforced at every socket operation (R46).

httpx's timeouts are per operation: a read timeout of 10 s is never hit by a server that
sends one byte every 2 s, in the status line, the headers or the body. So the guarded
transports (:mod:`oauthconn.http.guard`) give each request an absolute deadline, and the
guarded network backend wraps every stream so that each connect, TLS handshake, read and
write waits at most ``min(phase timeout, time left)`` and fails at once when none is left.

The deadline travels in a context variable that the transport sets only while its own code
runs httpcore for that request: while sending it and while the response body is read. That
scopes it to the request even on a kept-alive connection, in threads and in asyncio tasks.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import DeadlineExceeded

# Large writes go out in pieces so that each piece, not the whole body, gets the time left.
_WRITE_PIECE = 64 * 1024


@dataclass
class Budget:
    """The deadline (``time.monotonic()`` seconds) of the request being served."""

    deadline: float
    seconds: float
    #: set when a socket operation failed because the deadline, not its own timeout, ran out
    expired: bool = False

    @classmethod
    def starting_now(cls, seconds: float | None) -> Budget:
        if seconds is None:
            seconds = float(oauthconn_settings.REQUEST_DEADLINE)
        return cls(time.monotonic() + seconds, seconds)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def ran_out(self) -> bool:
        return self.expired or self.left() <= 0

    def error(self, request: httpx.Request) -> DeadlineExceeded:
        host = request.url.host
        err = DeadlineExceeded(
            f"{host} did not finish answering within the {self.seconds:g} s deadline.",
            host=host,
        )
        err.request = request
        return err


_BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "oauthconn_request_budget", default=None
)


@contextmanager
def running(budget: Budget) -> Iterator[None]:
    """Make ``budget`` the deadline of the socket operations run inside the block."""
    token = _BUDGET.set(budget)
    try:
        yield
    finally:
        _BUDGET.reset(token)


def bounded(
    timeout: float | None, timeout_error: type[Exception]
) -> tuple[float | None, Budget | None]:
    """The timeout for one socket operation: its own, or the time left if that is shorter.

    Returns ``(timeout, budget)``, where ``budget`` is the current request's
    :class:`Budget` when the deadline is the binding limit (pass it to :func:`expire` if
    the operation then times out), else None. Raises ``timeout_error`` (an httpcore timeout,
    so httpcore and httpx handle it as theirs) when the deadline has already passed.
    A plain function, not a context manager: it runs on every read and write.
    """
    budget = _BUDGET.get()
    if budget is None:
        return timeout, None
    left = budget.deadline - time.monotonic()
    if left <= 0:
        budget.expired = True
        raise timeout_error("the request deadline has passed")
    if timeout is not None and timeout < left:
        return timeout, None
    return left, budget


def expire(budget: Budget | None) -> None:
    """Record that an operation bounded by ``budget``'s deadline timed out."""
    if budget is not None:
        budget.expired = True


def cap_pool_timeout(request: httpx.Request, budget: Budget) -> dict[str, Any]:
    """Request extensions whose pool timeout (waiting for a free connection) fits the budget.

    The other phases are bounded per socket operation; waiting for the pool is not one.
    """
    timeouts = dict(request.extensions.get("timeout") or {})
    pool = timeouts.get("pool")
    left = max(budget.left(), 0.001)
    timeouts["pool"] = left if pool is None else min(pool, left)
    return {**request.extensions, "timeout": timeouts}


# --- network streams -------------------------------------------------------------------------


class DeadlineStream(httpcore.NetworkStream):
    """A sync network stream whose every operation respects the current request's budget."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        limit, budget = bounded(timeout, httpcore.ReadTimeout)
        try:
            return self.inner.read(max_bytes, limit)
        except httpcore.TimeoutException:
            expire(budget)
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), _WRITE_PIECE):
            limit, budget = bounded(timeout, httpcore.WriteTimeout)
            try:
                self.inner.write(buffer[start : start + _WRITE_PIECE], limit)
            except httpcore.TimeoutException:
                expire(budget)
                raise

    def close(self) -> None:
        self.inner.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        limit, budget = bounded(timeout, httpcore.ConnectTimeout)
        try:
            return DeadlineStream(self.inner.start_tls(ssl_context, server_hostname, limit))
        except httpcore.TimeoutException:
            expire(budget)
            raise

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class AsyncDeadlineStream(httpcore.AsyncNetworkStream):
    """The async twin of :class:`DeadlineStream`."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self.inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        limit, budget = bounded(timeout, httpcore.ReadTimeout)
        try:
            return await self.inner.read(max_bytes, limit)
        except httpcore.TimeoutException:
            expire(budget)
            raise

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), _WRITE_PIECE):
            limit, budget = bounded(timeout, httpcore.WriteTimeout)
            try:
                await self.inner.write(buffer[start : start + _WRITE_PIECE], limit)
            except httpcore.TimeoutException:
                expire(budget)
                raise

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        limit, budget = bounded(timeout, httpcore.ConnectTimeout)
        try:
            inner = await self.inner.start_tls(ssl_context, server_hostname, limit)
        except httpcore.TimeoutException:
            expire(budget)
            raise
        return AsyncDeadlineStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


# --- response bodies -------------------------------------------------------------------------


class DeadlineBody(httpx.SyncByteStream):
    """A response body read under its request's budget; running out raises DeadlineExceeded."""

    def __init__(self, inner: httpx.SyncByteStream, budget: Budget, request: httpx.Request):
        self.inner, self.budget, self.request = inner, budget, request

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self.inner)
        while True:
            with running(self.budget), translated(self.budget, self.request):
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        with running(self.budget):
            self.inner.close()


class AsyncDeadlineBody(httpx.AsyncByteStream):
    """The async twin of :class:`DeadlineBody`."""

    def __init__(self, inner: httpx.AsyncByteStream, budget: Budget, request: httpx.Request):
        self.inner, self.budget, self.request = inner, budget, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = self.inner.__aiter__()
        while True:
            # Set and reset around each step, never across a yield: the caller's context
            # must not keep this request's budget between chunks.
            with running(self.budget), translated(self.budget, self.request):
                chunk = await anext(chunks, None)
            if chunk is None:
                return
            yield chunk

    async def aclose(self) -> None:
        with running(self.budget):
            await self.inner.aclose()


@contextmanager
def translated(budget: Budget, request: httpx.Request) -> Iterator[None]:
    """Turn httpx's timeout into :class:`DeadlineExceeded` when the deadline caused it."""
    try:
        yield
    except httpx.TimeoutException as err:
        if isinstance(err, DeadlineExceeded) or not budget.ran_out():
            raise
        raise budget.error(request) from err

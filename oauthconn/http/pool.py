"""Connection pools shared by every client of a process: one per API origin and settings.

``get_connection(slug).get(path)`` in each request would otherwise open a TCP (and TLS)
connection per call and leave it in TIME_WAIT. The pools here hold sockets only: every
request still carries its own ``auth``, so two connections' tokens never mix, and every
socket is opened by the guarded transport (SSRF check, deadline, TLS settings).

A pool is keyed by the origin and by every setting that shapes its connections (CA bundle,
timeouts, the destination policy, the deadline): when one changes, the next client gets a new
pool, and connections opened under the old policy are never reused for it. Sync pools are
shared by threads (httpcore's pool is thread-safe); async pools are kept per event loop,
since an asyncio socket belongs to its loop. All are closed at interpreter exit
(:func:`close_pools`, registered with ``atexit``); an ASGI app may also ``await
aclose_pools()`` in its lifespan shutdown. A forked child (a pre-forking server) forgets the
parent's pools without touching their sockets, which the parent still uses.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import weakref
from collections import OrderedDict
from typing import Any

import httpx

from oauthconn.conf import oauthconn_settings

#: pools kept per process; beyond this the least recently used one is closed
MAX_POOLS = 64

PoolKey = tuple[Any, ...]

_lock = threading.RLock()  # a shared client builds its pool inside
_sync: OrderedDict[PoolKey, httpx.BaseTransport] = OrderedDict()
_async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[PoolKey, Any]] = (
    weakref.WeakKeyDictionary()
)
#: pools inherited over fork(): kept referenced so they are never closed (or collected) here
_inherited: list[Any] = []


def pool_key(origin: tuple[str, str, int | None], deadline: float | None) -> PoolKey:
    """The origin plus every setting that shapes the pool's connections, read now."""
    s = oauthconn_settings
    return (
        origin,
        deadline,
        str(s.CA_BUNDLE or ""),
        float(s.CONNECT_TIMEOUT),
        float(s.READ_TIMEOUT),
        bool(s.ALLOW_INSECURE_LOOPBACK),
        tuple(s.ALLOWED_PRIVATE_HOSTS),
        tuple(str(n) for n in s.ALLOWED_PRIVATE_NETWORKS),
        tuple(s.ALLOWED_PORTS),
    )


def shared_transport(key: PoolKey, build: Any) -> Any:
    """The process's sync pool for ``key``, built by ``build()`` the first time.

    Also holds the process-wide clients on those pools (their keys say so), so one registry
    is closed at exit.
    """
    with _lock:
        transport = _sync.get(key)
        evicted = None
        if transport is None:
            transport = _sync[key] = build()
            if len(_sync) > MAX_POOLS:
                evicted = _sync.popitem(last=False)[1]
        else:
            _sync.move_to_end(key)
    if evicted is not None:
        evicted.close()
    return transport


def shared_async_transport(key: PoolKey, build: Any) -> httpx.AsyncBaseTransport:
    """The running event loop's async pool for ``key``, built by ``build()`` the first time."""
    transport: httpx.AsyncBaseTransport = shared_per_loop(key, build)
    return transport


def shared_per_loop(key: PoolKey, build: Any) -> Any:
    """The running loop's object for ``key`` (a pool, or a shared ``AsyncClient``), built by
    ``build()`` the first time; closed with the loop's pools (it must have ``aclose()``)."""
    loop = asyncio.get_running_loop()
    with _lock:
        pools = _async.get(loop)
        if pools is None:
            _forget_closed_loops()
            pools = _async[loop] = {}
        shared = pools.get(key)
        if shared is None:
            shared = pools[key] = build()
    return shared


def _forget_closed_loops() -> None:
    """Drop the pools of event loops that have closed without closing them (each
    ``asyncio.run`` or ``async_to_sync`` call may have its own loop). The registry's weak
    keys alone do not free them: a pool's connections refer to their loop. Their sockets are
    released with them; they can no longer be closed on their loop."""
    for loop in [loop for loop in _async if loop.is_closed()]:
        del _async[loop]


class SharedTransport(httpx.BaseTransport):
    """A client's view of a shared pool: closing the client leaves the pool open."""

    def __init__(self, pool: httpx.BaseTransport) -> None:
        self.pool = pool

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.pool.handle_request(request)

    def close(self) -> None:
        pass  # the pool outlives its clients; close_pools() ends it


class SharedAsyncTransport(httpx.AsyncBaseTransport):
    """The async twin: finds the pool of the loop each request runs on."""

    def __init__(self, key: PoolKey, build: Any) -> None:
        self.key = key
        self.build = build

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        pool = shared_async_transport(self.key, self.build)
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        pass  # per-loop pools end with aclose_pools() / close_pools()


def close_pools() -> None:
    """Close every sync pool, and the async pools of loops that are not running.

    Registered with ``atexit``. Async pools of a loop that is already closed cannot be
    closed on it; the process's exit releases their sockets.
    """
    with _lock:
        sync = list(_sync.values())
        _sync.clear()
        loops = list(_async.items())
        _async.clear()
    for transport in sync:
        transport.close()
    for loop, pools in loops:
        if not loop.is_closed() and not loop.is_running():
            loop.run_until_complete(_aclose_all(list(pools.values())))


async def aclose_pools() -> None:
    """Close the running loop's async pools (for an ASGI lifespan shutdown)."""
    loop = asyncio.get_running_loop()
    with _lock:
        pools = _async.pop(loop, {})
    await _aclose_all(list(pools.values()))


async def _aclose_all(transports: list[Any]) -> None:
    for transport in transports:
        await transport.aclose()


def _forget_after_fork() -> None:
    global _lock
    # The child shares the parent's sockets: closing them here would cut the parent's
    # requests, and reusing them would interleave two processes' bytes.
    _inherited.extend(_sync.values())
    _inherited.extend(_async.items())
    _sync.clear()
    _async.clear()
    _lock = threading.RLock()


atexit.register(close_pools)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)

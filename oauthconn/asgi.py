"""ASGI glue: close the event loop's shared HTTP pools when the server shuts down.

Django's ASGI handler speaks HTTP only and refuses the lifespan protocol, so nothing tells
the pools of :mod:`oauthconn.http.pool` that the loop is about to end. Wrapping the
application answers lifespan itself and closes them at shutdown (``aclose_pools``)::

    application = close_pools_at_shutdown(get_asgi_application())
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from oauthconn.http.pool import aclose_pools

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def close_pools_at_shutdown(app: ASGIApp) -> ASGIApp:
    """``app`` for HTTP (and websockets), with the lifespan protocol handled here."""

    async def application(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await aclose_pools()
                await send({"type": "lifespan.shutdown.complete"})
                return

    return application

"""The HTTP plumbing of the fake provider: a threaded stdlib server on 127.0.0.1, what it
records of each request, and scripted replies.

Kept apart from the provider's logic (:mod:`oauthconn.testing.provider`) so each stays small.
No dependency beyond the standard library: the kit must not add a runtime dependency.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

#: form fields and headers a recorded request's repr leaves out: a test log may be shared
SECRET_FIELDS = frozenset(
    {"client_secret", "code", "code_verifier", "refresh_token", "token", "client_assertion"}
)


@dataclass
class Reply:
    """One scripted answer of the fake provider.

    ``status=None`` means "answer as usual", so ``Reply(delay=2)`` is a slow but correct
    answer. ``json`` is sent as ``application/json``; ``body`` as given (bytes or text).
    """

    status: int | None = 200
    json: Any = None
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    @classmethod
    def error(cls, error: str, status: int = 400, description: str = "") -> Reply:
        """An OAuth error response (RFC 6749 §5.2), e.g. ``Reply.error("invalid_grant")``."""
        payload = {"error": error, **({"error_description": description} if description else {})}
        return cls(status=status, json=payload)

    @classmethod
    def rate_limited(cls, retry_after: int = 30) -> Reply:
        """429 Too Many Requests with a Retry-After in seconds (RFC 6585 §4)."""
        return cls(
            status=429, json={"error": "rate_limited"}, headers={"Retry-After": str(retry_after)}
        )

    @classmethod
    def server_error(cls, status: int = 503) -> Reply:
        """A 5xx with an HTML page, as load balancers send."""
        return cls(
            status=status,
            body="<html><body>Service unavailable</body></html>",
            headers={"Content-Type": "text/html"},
        )

    @classmethod
    def slow(cls, delay: float) -> Reply:
        """The usual answer, after ``delay`` seconds."""
        return cls(status=None, delay=delay)

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if self.json is not None:
            headers.setdefault("Content-Type", "application/json")
            return json.dumps(self.json).encode(), headers
        body = self.body.encode() if isinstance(self.body, str) else self.body
        return body, headers


@dataclass(frozen=True)
class RecordedRequest:
    """A request the fake provider received. Everything is kept (it is a test tool), but the
    repr shows no secret, so a failing assertion never prints a token or a client secret."""

    method: str
    path: str
    query: dict[str, str] = field(repr=False)
    form: dict[str, str] = field(repr=False)
    headers: dict[str, str] = field(repr=False)

    @property
    def endpoint(self) -> str:
        """The path without its leading slash: "token", "me", "authorize", ..."""
        return self.path.strip("/")

    @property
    def grant_type(self) -> str | None:
        return self.form.get("grant_type")

    @property
    def bearer(self) -> str | None:
        """The access token of an ``Authorization: Bearer`` header, if any."""
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        return value if scheme.lower() == "bearer" and value else None

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.form.items() if k not in SECRET_FIELDS}
        return f"<RecordedRequest {self.method} {self.path} {shown}>"


Handler = Callable[[RecordedRequest], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a slow scripted reply must not hold up close()
    handle: Handler
    stopping: threading.Event

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (its timeout) is what a slow-reply test wants


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers at close()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # the request line of /authorize carries the code challenge and state

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        request = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            form=dict(parse_qsl(body, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        reply = self.server.handle(request)
        try:
            self._send(reply)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send(self, reply: Reply) -> None:
        if reply.delay and self.server.stopping.wait(reply.delay):
            return
        body, headers = reply.encoded()
        self.send_response(reply.status or 200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class LoopbackServer:
    """``handle`` answering HTTP on 127.0.0.1 at a free port, in daemon threads."""

    def __init__(self, handle: Handler) -> None:
        self.stopping = threading.Event()
        self._httpd = _Server(("127.0.0.1", 0), _RequestHandler)
        self._httpd.handle = handle
        self._httpd.stopping = self.stopping
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def close(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def redirect(location: str) -> Reply:
    return Reply(status=302, headers={"Location": location})

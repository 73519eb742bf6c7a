"""A fast token endpoint for the proactive refresh benchmark: the upper limit of a provider.

It answers every ``refresh_token`` grant at once with a fresh access token and a fresh
(rotated) refresh token, touches no database and checks nothing but the form, so what a client
measured against it achieves is bounded by the client. It counts what it answers and the
distinct refresh tokens presented (equal to the total when no token was refreshed twice).

    python -m benchmarks.token_server PORT

``GET /stats`` returns the counts since the last reset, ``POST /stats`` resets them; the token
endpoint is ``POST /token``. HTTP/1.1 with keep-alive, one thread per connection.
"""

from __future__ import annotations

import json
import secrets
import socket
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

_lock = threading.Lock()
_seen: Counter[str] = Counter()
_presented: set[str] = set()


def answer(form: dict[str, list[str]]) -> tuple[int, dict]:
    """Status and JSON body for one token request (only the refresh_token grant is served)."""
    refresh = form.get("refresh_token", [""])[0]
    if form.get("grant_type", [""])[0] != "refresh_token" or not refresh:
        return 400, {"error": "unsupported_grant_type"}
    with _lock:
        _presented.add(refresh)
    body = {
        "access_token": secrets.token_urlsafe(30),
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": secrets.token_urlsafe(30),
        "scope": form.get("scope", ["read write"])[0],
    }
    return 200, body


def stats(reset: bool) -> dict[str, int]:
    with _lock:
        data = {**_seen, "distinct_refresh_tokens": len(_presented)}
        if reset:
            _seen.clear()
            _presented.clear()
    return data


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body are two writes; Nagle's algorithm would hold the second for the
        # client's delayed ACK (40 ms) and the limit would measure that instead.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        if self.path == "/stats":
            self._reply(200, stats(reset=True))
            return
        status, body = answer(parse_qs(raw)) if self.path == "/token" else (404, {})
        with _lock:
            _seen["total"] += 1
            _seen[f"status_{status}"] += 1
        self._reply(status, body)

    def do_GET(self) -> None:  # noqa: N802
        self._reply(200, stats(reset=False)) if self.path == "/stats" else self._reply(404, {})

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def serve(port: int) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.request_queue_size = 256
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]))

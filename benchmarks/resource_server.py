"""A tiny resource server on 127.0.0.1 that checks a bearer token (RFC 6750 §2.1).

The same server answers every client compared, so the differences are the clients'. It speaks
HTTP/1.1 with keep-alive, as a real API does.

    BENCH_RESOURCE_TOKEN=... python -m benchmarks.resource_server PORT
"""

from __future__ import annotations

import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b'{"ok": true}'


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    expected = ""

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; with Nagle's algorithm the second waits for
        # the client's delayed ACK (40 ms), which would swamp everything measured here.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.headers.get("Authorization") == f"Bearer {self.expected}":
            self._reply(200, BODY)
        else:
            self._reply(
                401, b'{"error": "invalid_token"}', challenge='Bearer error="invalid_token"'
            )

    def _reply(self, status: int, body: bytes, challenge: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if challenge:
            self.send_header("WWW-Authenticate", challenge)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def serve(port: int, token: str) -> None:
    Handler.expected = token
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]), os.environ["BENCH_RESOURCE_TOKEN"])

"""A small real HTTP server that misbehaves on request, for provider-failure tests.

Use the ``scripted_server`` fixture (define it here; ``tests/conftest.py`` can expose it
with ``from tests.scripted_server import scripted_server  # noqa: F401`` or
``pytest_plugins = ["tests.scripted_server"]``)::

    def test_slow_token_endpoint(scripted_server):
        scripted_server.add("/token", Reply(body={"access_token": "a"}, delay=2))
        url = scripted_server.url("/token")          # http://127.0.0.1:<port>/token
        ...
        assert scripted_server.requests[0].form() == {...}

``add(path, *replies)`` queues replies, each used once in order; ``default(path, reply)``
answers once the queue is empty; unscripted paths get a 404. A reply may also be a function
``(RecordedRequest) -> Reply`` for answers that depend on the request. Every request is
recorded (method, path, query, headers, body) before the reply's delay starts.

Replies can be slow (``delay`` before the status line), stream a body slowly (``chunks`` +
``chunk_delay``), stream forever (``chunks=itertools.repeat(b"x" * 65536)``), redirect
(``status=307, headers={"Location": ...}``) or be HTML (``body="<html>..."``,
``headers={"Content-Type": "text/html"}``). A ``dict``/``list`` body is sent as JSON.

Each response closes its connection (HTTP/1.0 style), so a streamed body simply ends at
close; ``ScriptedServer(keep_alive=True)`` speaks HTTP/1.1 and keeps connections open
instead (replies without ``chunks`` only); ``accepted`` counts the TCP connections.
Handler threads are daemons and all waits watch a stop event, so teardown never hangs on a
slow reply. ``ScriptedServer(tls=(certfile, keyfile))`` serves https instead;
:func:`make_test_ca` writes a throwaway CA and a localhost certificate for that.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest


@dataclass
class Reply:
    """One scripted answer. ``body`` may be bytes, str, or any JSON value."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = b""
    delay: float = 0.0
    chunks: Iterable[bytes] | None = None
    chunk_delay: float = 0.0

    def encoded_body(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            return self.body.encode("utf-8"), headers
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        return json.dumps(self.body).encode("utf-8"), headers


@dataclass(frozen=True)
class RecordedRequest:
    """What the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    raw_query: str
    headers: httpx.Headers
    body: bytes

    def form(self) -> dict[str, list[str]]:
        """The body parsed as application/x-www-form-urlencoded."""
        return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)


Responder = Reply | Callable[[RecordedRequest], Reply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Don't join handler threads on close: a reply may be sleeping or streaming forever.
    block_on_close = False
    scripted: ScriptedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # failed TLS handshakes and dropped clients are expected in these tests

    def get_request(self) -> tuple[Any, Any]:
        accepted = super().get_request()
        with self.scripted._lock:
            self.scripted.accepted += 1
        return accepted


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep test output clean

    def _handle(self) -> None:
        scripted = self.server.scripted
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            raw_query=parts.query,
            headers=httpx.Headers(list(self.headers.items())),
            body=self.rfile.read(length) if length else b"",
        )
        reply = scripted._record_and_pick(request)
        try:
            self._answer(reply, scripted.stopping)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            pass  # the client gave up (timeout, size cap): that is what the test wanted

    def _answer(self, reply: Reply, stopping: threading.Event) -> None:
        if reply.delay and stopping.wait(reply.delay):
            return
        body, headers = reply.encoded_body()
        self.send_response(reply.status)
        for name, value in headers.items():
            self.send_header(name, value)
        if reply.chunks is None:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if reply.chunks is None:
            self.wfile.write(body)
            return
        for chunk in reply.chunks:
            if stopping.is_set() or (reply.chunk_delay and stopping.wait(reply.chunk_delay)):
                return
            self.wfile.write(chunk)
            self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class _KeepAliveHandler(_Handler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body are two writes: without this, Nagle's algorithm holds the body
        # until the client's delayed ACK (40 ms) on every kept-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class ScriptedServer:
    """A threaded HTTP(S) server on 127.0.0.1 with a random port; see the module docstring."""

    def __init__(
        self, tls: tuple[str | Path, str | Path] | None = None, *, keep_alive: bool = False
    ) -> None:
        self.requests: list[RecordedRequest] = []
        #: TCP connections accepted so far
        self.accepted = 0
        self.stopping = threading.Event()
        self._queues: dict[str, deque[Responder]] = defaultdict(deque)
        self._defaults: dict[str, Responder] = {}
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), _KeepAliveHandler if keep_alive else _Handler)
        self._httpd.scripted = self
        self.scheme = "https" if tls else "http"
        if tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            # Handshake in the handler thread, not in accept(): a client that rejects our
            # certificate must not stall the accept loop.
            self._httpd.socket = context.wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False
            )
        # A short poll interval keeps shutdown() (and so fixture teardown) fast.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        """Absolute URL of ``path`` on this server (``host`` may be "localhost")."""
        return f"{self.scheme}://{host}:{self.port}{path}"

    def add(self, path: str, *replies: Responder) -> None:
        """Queue replies for ``path``; each is used once, in order."""
        with self._lock:
            self._queues[path].extend(replies)

    def default(self, path: str, reply: Responder) -> None:
        """The reply for ``path`` once its queue is empty."""
        with self._lock:
            self._defaults[path] = reply

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def _record_and_pick(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            queue = self._queues.get(request.path)
            responder = queue.popleft() if queue else self._defaults.get(request.path)
        if responder is None:
            return Reply(status=404, body={"error": "not_scripted", "path": request.path})
        return responder(request) if callable(responder) else responder

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    """A running :class:`ScriptedServer` (plain http on 127.0.0.1), stopped at teardown."""
    with ScriptedServer() as server:
        yield server


# --- TLS material for https tests ------------------------------------------------------------


def make_test_ca(directory: Path) -> tuple[Path, Path, Path]:
    """Write a throwaway CA and a certificate for localhost/127.0.0.1 it signs.

    Returns ``(ca_cert, server_cert, server_key)`` paths. EC keys keep this fast.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key)
    leaf_cert = _leaf_certificate(leaf_key.public_key(), ca_cert, ca_key)
    pem = serialization.Encoding.PEM
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    paths[0].write_bytes(ca_cert.public_bytes(pem))
    paths[1].write_bytes(leaf_cert.public_bytes(pem))
    key_format = serialization.PrivateFormat.PKCS8
    paths[2].write_bytes(leaf_key.private_bytes(pem, key_format, serialization.NoEncryption()))
    return paths


def _ca_certificate(ca_key: Any) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "oauthconn test CA")])
    usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    return (
        _cert_builder(name, name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )


def _leaf_certificate(public_key: Any, ca_cert: Any, ca_key: Any) -> Any:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
    return (
        _cert_builder(name, ca_cert.subject, public_key)
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(authority, critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _cert_builder(subject: Any, issuer: Any, public_key: Any) -> Any:
    from cryptography import x509

    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
    )


__all__ = ["RecordedRequest", "Reply", "ScriptedServer", "make_test_ca", "scripted_server"]

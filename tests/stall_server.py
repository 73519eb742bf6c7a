"""Raw TCP servers on 127.0.0.1 that stall an HTTP client in one chosen phase.

:class:`StallServer` accepts connections and, per connection, either never says anything
(``Stall()``: the client waits for a status line, or for the TLS ServerHello when it speaks
https) or reads the request head, sends ``head`` at once and then ``trickle`` one byte every
``interval`` seconds, then stays silent with the connection open. So a stall can sit in the
status line, the headers or the body, whichever the script puts in ``trickle``.

:func:`full_backlog` is a listening socket whose accept queue is already full, so a further
``connect()`` on loopback gets no answer (Linux drops the SYN while the queue is full).

Everything runs in daemon threads that watch one stop event; ``stop()`` (or leaving the
``with`` block) ends them within ~50 ms, however far a script had got.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Stall:
    """What the server sends on each connection: nothing at all, or ``head`` then a trickle."""

    head: bytes = b""
    trickle: bytes = b""
    interval: float = 0.0
    #: False: never read or answer anything (a silent peer, also for TLS handshakes)
    answers: bool = False


class StallServer:
    """A thread per connection playing a :class:`Stall`; ``url()`` points at it."""

    def __init__(self, stall: Stall, *, scheme: str = "http") -> None:
        self.stall = stall
        self.scheme = scheme
        self.stopping = threading.Event()
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    def url(self, path: str = "/") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def start(self) -> StallServer:
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self._listener.close()

    def __enter__(self) -> StallServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            self._spawn(self._serve, sock)

    def _serve(self, sock: socket.socket) -> None:
        with sock, contextlib.suppress(OSError):
            if self.stall.answers:
                _read_head(sock, self.stopping)
                sock.sendall(self.stall.head)
                for byte in self.stall.trickle:
                    if self.stopping.wait(self.stall.interval):
                        return
                    sock.sendall(bytes([byte]))
            self.stopping.wait()


def _read_head(sock: socket.socket, stopping: threading.Event) -> None:
    """Read up to the end of the request head (a small request body may come with it)."""
    sock.settimeout(0.05)
    data = b""
    while b"\r\n\r\n" not in data and not stopping.is_set():
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return
        data += chunk


@contextlib.contextmanager
def full_backlog() -> Iterator[int]:
    """Yield a loopback port whose listen queue is full: connecting to it hangs."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        # With a backlog of 0 one established, never accepted connection fills the queue.
        filler.connect(("127.0.0.1", port))
        yield port

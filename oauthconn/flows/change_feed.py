"""PostgreSQL, opt-in: hear that a grant's rows changed instead of asking (``LISTEN_FOR_CHANGES``).

By default every ``get_connection()`` asks PostgreSQL whether the connection's, provider's and
grant's rows changed since this process read them: one narrow round trip (flows/lookup.py).
With ``OAUTHCONN["LISTEN_FOR_CHANGES"]``, each process keeps one more connection, which
LISTENs on the channel where migration 0024's triggers name every connection, provider and
grant that changes, except a grant's renewal. A row read before is then served without a
statement while all of these hold:

- this feed has been listening, on one connection, since before the row was read, and has
  heard a probe of its own back on it (a NOTIFY it sends on listening and every
  :data:`PROBE_EVERY` seconds: a connection that stops hearing them, dead or behind a proxy
  that does not keep a LISTEN, is dropped and vouches for nothing);
- no notification has named the row's connection or provider since. Notifications waiting on
  the socket are read by the caller itself before it answers, so none waits for the
  listening thread's turn; when that thread holds the socket, the caller asks the database;
- the caller is not inside a transaction (the row may be its own uncommitted write, which
  notifies only at commit) and the grant is not due for refresh (both checked in
  flows/lookup.py).

What it costs: a change is heard once PostgreSQL has delivered its notification, which it
sends after the writer's COMMIT, so a request that follows another process's write by less
than that (tens of microseconds on one host, milliseconds at worst) may still be served the
old row. Saves and deletes through the ORM in this process are heard at once
(:func:`hear_orm_writes`). A renewal is not notified: a process may use an access token that
another one has replaced, as a kept connection object does, until its own is due or
answered 401. One more database connection per process. A feed that loses its connection
vouches for nothing until it listens again, and forgets everything it heard before.
"""

from __future__ import annotations

import atexit
import functools
import itertools
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.db.models.signals import post_delete, post_save

from oauthconn.conf import oauthconn_settings

logger = logging.getLogger(__name__)

CHANNEL = "oauthconn_changes"  # migration 0024
#: payload of a statement over many connections' grants: forget everything
EVERYTHING = "*"
#: payloads that start so are a feed's probes, not changes
PROBE = "~"
#: seconds between a feed's probes: a NOTIFY of its own that it must hear back by the next
#: one, or it stops vouching (a dead connection, a proxy that does not keep the LISTEN)
PROBE_EVERY = 5.0
#: seconds between attempts to listen again, after the first failures
RETRY_AFTER = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
#: the listening thread's wait for its socket, in milliseconds
IDLE_WAIT_MS = 1000
#: seconds a caller waits for the socket while the thread uses it (then it asks the database)
CALLER_WAIT = 0.001
#: SQLSTATE class 57P: the server ends the session (57P02, another backend's crash, comes as
#: a WARNING)
OPERATOR_INTERVENTION = "57P"
#: distinct keys heard before the feed starts over (a new epoch forgets them all)
MAX_KEYS = 100_000
#: TCP keepalives for the listening connection, unless the database's OPTIONS set them
KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}

#: (the listening connection's epoch, the notifications heard before the row was read)
Stamp = tuple[int, int]
#: epochs are unique in a process, and in its children (the counter is inherited)
_epochs = itertools.count(1)


class ChangeFeed:
    """One database's notifications, heard by a daemon thread and by callers.

    Two locks: ``_socket`` while the listening connection is read or written (by the thread
    or a caller), ``_state`` while what was heard changes (microseconds). A caller never
    waits on the connection: when the thread holds it (reading, or a probe on a connection
    that may be dead), the caller asks the database instead.
    """

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        #: the process it hears for: a child forked without os.fork's hooks has none
        self.pid = os.getpid()
        self._socket = threading.Lock()
        self._state = threading.Lock()
        self._listening: Any = None  # the psycopg connection while it listens
        self._epoch = 0
        self._heard = 0
        self._changed: dict[str, int] = {}
        self._probe: str | None = None  # the probe sent and not heard back yet
        #: the listening connection once its server has said it is closing it, and why
        self._farewell: tuple[Any, str] | None = None
        #: whether this connection has heard a probe of its own back (it vouches from then)
        self._proven = False
        self._probes = itertools.count(1)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="oauthconn-changes", daemon=True)

    def start(self) -> ChangeFeed:
        self._thread.start()
        return self

    @property
    def listening(self) -> bool:
        """Listening, and proven to hear its own notifications."""
        return self._listening is not None and self._proven

    def stamp(self) -> Stamp | None:
        """Taken before reading a row: what :meth:`vouches` compares with later."""
        if not self._caught_up():
            return None
        with self._state:
            return (self._epoch, self._heard) if self.listening else None

    def vouches(self, stamp: Stamp | None, keys: Iterable[str]) -> bool:
        """Whether nothing named ``keys`` changed since ``stamp`` was taken."""
        if stamp is None or not self._caught_up():
            return False
        with self._state:
            if not self.listening or stamp[0] != self._epoch:
                return False
            return all(self._changed.get(key, 0) <= stamp[1] for key in keys)

    def heard(self, key: str) -> None:
        """``key`` changed (a notification, or a write in this process)."""
        with self._state:
            self._note(key)

    def stop(self) -> None:
        self._stopped.set()
        # The thread may be waiting on a dead connection: then it closes it itself, later.
        if self._socket.acquire(timeout=1.0):
            try:
                self._lose()
            finally:
                self._socket.release()

    def _caught_up(self) -> bool:
        """Whether every notification that reached the socket has been heard."""
        if not self._socket.acquire(timeout=CALLER_WAIT):
            return False
        try:
            self._read_waiting()
        finally:
            self._socket.release()
        return True

    def _note(self, key: str) -> None:
        """With ``_state`` held."""
        if key.startswith(PROBE):
            if key == self._probe:
                self._probe, self._proven = None, True
            return  # a probe (this feed's or another process's) names nothing
        self._heard += 1
        if key == EVERYTHING or len(self._changed) >= MAX_KEYS:
            self._changed.clear()
            self._epoch = next(_epochs)  # every stamp taken before is void
        if key != EVERYTHING:
            self._changed[key] = self._heard

    def _heard_from_server(self, conn: Any, diagnostic: Any) -> None:
        """The listening connection's notice handler, which is also where libpq sends an
        error that comes while no statement runs: the server's goodbye before it closes the
        socket (pg_terminate_backend, idle_session_timeout, a shutdown, another backend's
        crash). The close itself is read only on a later read, and this feed must not vouch
        for one more lookup meanwhile."""
        severity, code = diagnostic.severity_nonlocalized, diagnostic.sqlstate or ""
        if severity in ("FATAL", "PANIC") or code.startswith(OPERATOR_INTERVENTION):
            self._farewell = (conn, f"{code}: {diagnostic.message_primary}")

    def _hear(self, payload: str) -> None:
        with self._state:
            for key in payload.split(","):
                self._note(key)

    # --- with ``_socket`` held ----------------------------------------------------------------

    def _read_waiting(self) -> None:
        """Take in the notifications that have reached the socket."""
        conn = self._listening
        if conn is None:
            return
        try:
            pgconn = conn.pgconn
            if _readable(pgconn.socket, 0):
                pgconn.consume_input()
                while (notification := pgconn.notifies()) is not None:
                    self._hear(notification.extra.decode())
        except Exception:  # the connection is gone: the next one starts a new epoch
            logger.warning("oauthconn stopped hearing changes: its connection was lost.")
            self._lose()
            return
        if self._farewell is not None and self._farewell[0] is conn:
            logger.warning(
                "oauthconn stopped hearing changes: the server is closing its connection (%s).",
                self._farewell[1],
            )
            self._lose()

    def _send_probe(self) -> None:
        """Lose the connection if the last probe was not heard back; send the next."""
        conn = self._listening
        if conn is None:
            return
        if self._probe is not None:
            logger.warning(
                "oauthconn stopped hearing changes: it did not hear its own notification "
                "back (a dead connection, or a proxy that does not keep a LISTEN)."
            )
            self._lose()
            return
        self._probe = f"{PROBE}{os.getpid()}.{id(self)}.{next(self._probes)}"
        try:  # what arrives meanwhile reaches _hear through the connection's handler
            conn.execute("SELECT pg_notify(%s, %s)", [CHANNEL, self._probe])
        except Exception:
            logger.warning("oauthconn stopped hearing changes: its connection was lost.")
            self._lose()

    def _lose(self) -> None:
        conn = self._listening
        with self._state:
            self._listening = None
            self._changed.clear()
            self._probe, self._proven = None, False
            self._farewell = None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass  # it is gone either way

    # --- the listening thread -----------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stopped.is_set():
            conn = self._listen()
            if conn is not None:
                failures = 0
                self._follow(conn)
            else:
                failures += 1
            if self._stopped.wait(RETRY_AFTER[min(failures, len(RETRY_AFTER) - 1)]):
                return

    def _listen(self) -> Any:
        conn = None
        try:
            conn = self._connect()
            conn.add_notify_handler(lambda notification: self._hear(notification.payload))
            conn.add_notice_handler(functools.partial(self._heard_from_server, conn))
            conn.execute(f"LISTEN {CHANNEL}")
        except Exception as error:
            logger.warning("oauthconn cannot listen for changes: %s", type(error).__name__)
            if conn is not None:
                conn.close()
            return None
        with self._socket:
            if self._stopped.is_set():
                conn.close()
                return None
            with self._state:
                self._listening = conn
                self._changed.clear()
                self._probe, self._proven = None, False
                self._epoch = next(_epochs)
            self._send_probe()  # it vouches once it hears this back
        return conn

    def _follow(self, conn: Any) -> None:
        """Hear notifications as they come, and probe, until the connection is lost or the
        feed stops."""
        next_probe = time.monotonic() + PROBE_EVERY
        while self._listening is conn and not self._stopped.is_set():
            try:
                _readable(conn.pgconn.socket, IDLE_WAIT_MS)
            except Exception:
                pass  # closed meanwhile: _read_waiting, or the loop's condition, says so
            with self._socket:
                if self._listening is not conn:
                    return
                self._read_waiting()
                if time.monotonic() >= next_probe:
                    self._send_probe()
                    next_probe = time.monotonic() + PROBE_EVERY
        with self._socket:
            if self._listening is conn:  # stopped while this thread held the socket
                self._lose()


def _readable(fd: int, timeout_ms: int) -> bool:
    if hasattr(select, "poll"):  # select() fails on descriptors past FD_SETSIZE
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(timeout_ms))
    return bool(select.select([fd], [], [], timeout_ms / 1000)[0])


# --- the feeds of this process ---------------------------------------------------------------

_feeds: dict[str, ChangeFeed] = {}
#: the registry's lock, one per process: a child forked from C without os.fork's hooks
#: (see :func:`feed_for`) must not inherit a lock that another thread held at the fork
_feeds_locks: dict[int, threading.Lock] = {}


def _feeds_lock() -> threading.Lock:
    # dict.setdefault is atomic: two threads of a new child get the same lock
    return _feeds_locks.setdefault(os.getpid(), threading.Lock())


def feed_for(db: Any) -> ChangeFeed | None:
    """The change feed of database ``db`` (a Django connection), started on first use; None
    unless ``LISTEN_FOR_CHANGES`` is on and ``db`` is PostgreSQL through psycopg 3."""
    if not oauthconn_settings.LISTEN_FOR_CHANGES or not can_listen(db):
        return None
    feed = _feeds.get(db.alias)
    if feed is None or feed.pid != os.getpid():
        with _feeds_lock():
            feed = _feeds.get(db.alias)
            if feed is None or feed.pid != os.getpid():  # a server forked us from C (uWSGI)
                feed = _feeds[db.alias] = ChangeFeed(_connector(db)).start()
    return feed


def can_listen(db: Any) -> bool:
    return db.vendor == "postgresql" and db.Database.__name__ == "psycopg"


def _connector(db: Any) -> Callable[[], Any]:
    """Opens a connection like ``db``'s own, in autocommit, outside Django's management."""
    params = db.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params = {**KEEPALIVES, "application_name": "oauthconn changes", **params}
    return lambda: db.Database.connect(**params, autocommit=True)


def hear_orm_writes() -> None:
    """Saves and deletes through the ORM in this process are heard at once, without waiting
    for their notification (a renewal too: this process then reads the renewed row)."""
    from oauthconn.models import Connection, Provider, Token

    # the key a write names: the one its notification would (migration 0024)
    keys: dict[type, Callable[[Any], str]] = {
        Provider: lambda provider: f"p{provider.pk}",
        Connection: lambda connection: f"c{connection.pk}",
        Token: lambda token: f"c{token.connection_id}",
    }
    for model, key in keys.items():
        receiver = functools.partial(_written, key)
        for signal in (post_save, post_delete):
            uid = f"oauthconn_heard_{model.__name__}"
            signal.connect(receiver, sender=model, weak=False, dispatch_uid=uid)


def _written(key: Callable[[Any], str], sender: type, instance: Any, **kwargs: Any) -> None:
    feed = _feeds.get(instance._state.db)
    if feed is not None:
        feed.heard(key(instance))


def stop_all() -> None:
    """Stop every feed and close its connection (at exit; tests)."""
    with _feeds_lock():
        feeds = list(_feeds.values())
        _feeds.clear()
    for feed in feeds:
        feed.stop()


def _forget_parents_feeds() -> None:
    # A forked child has none of the parent's threads and must not touch its sockets or
    # locks: it starts feeds of its own (the parent's stamps name epochs the child never has).
    _feeds.clear()
    _feeds_locks.clear()


atexit.register(stop_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parents_feeds)

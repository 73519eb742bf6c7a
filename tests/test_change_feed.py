"""PostgreSQL, ``LISTEN_FOR_CHANGES``: a kept row is served without a statement until a change
is notified (flows/change_feed.py, migration 0024's triggers).

What must hold: every change but a renewal is heard (whoever wrote it), a change is served
once heard, a write inside the caller's transaction or by the ORM in this process is seen at
once, a renewal elsewhere is read when the held token is due, and a feed that loses its
connection vouches for nothing until it listens again.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import time
from datetime import timedelta
from importlib import import_module

import psycopg
import pytest
from django.db import connection as db
from django.db import transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from oauthconn import get_connection
from oauthconn.checks import check_change_feed
from oauthconn.exceptions import NotConnected
from oauthconn.flows import change_feed
from oauthconn.models import Connection, Provider, Token, TokenStatus
from tests import test_lookup_cache
from tests.migrations import migrated_back_to
from tests.postgres import dsn

migration = import_module("oauthconn.migrations.0024_lookup_change_notifications")

#: the fixture of test_lookup_cache: connection "crm", its token valid for an hour
crm = test_lookup_cache.crm
base_url = test_lookup_cache.base_url


def on_postgres(test):
    """A test of committed writes on PostgreSQL (notifications are sent at commit)."""
    return pytest.mark.postgres(pytest.mark.django_db(transaction=True)(test))


def elsewhere(sql: str, params: list | None = None) -> None:
    """A statement committed by another database connection (another process, a tool)."""
    with psycopg.connect(dsn(), autocommit=True) as other:
        other.execute(sql, params or [])


def eventually(read, expected, seconds: float = 10.0):
    """``read()`` once it returns ``expected`` (a notification's delivery takes a moment)."""
    deadline = time.monotonic() + seconds
    while (value := read()) != expected and time.monotonic() < deadline:
        time.sleep(0.005)
    return value


def statements(call) -> int:
    with CaptureQueriesContext(db) as queries:
        call()
    return len(queries)


@pytest.fixture
def listening(settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "LISTEN_FOR_CHANGES": True}
    feed = change_feed.feed_for(db)
    assert eventually(lambda: feed.listening, True), "the feed listens within seconds"
    yield feed
    change_feed.stop_all()  # its connection would keep the test database from being dropped


# --- the lookup ---------------------------------------------------------------------------


@on_postgres
@pytest.mark.parametrize("listen", [False, True])
def test_a_kept_row_is_served_without_a_statement_only_while_listening(crm, listen, request):
    if listen:
        request.getfixturevalue("listening")
    get_connection("crm")
    assert statements(lambda: get_connection("crm").access_token) == (0 if listen else 1)


@on_postgres
def test_changes_by_another_connection_are_served_once_heard(crm, listening):
    base_url()
    elsewhere("UPDATE oauthconn_connection SET api_base_url = 'https://b.example/'")
    assert eventually(base_url, "https://b.example/") == "https://b.example/"
    elsewhere("UPDATE oauthconn_provider SET token_endpoint = 'https://as.example/v2'")
    read = lambda: get_connection("crm").connection.provider.token_endpoint  # noqa: E731
    assert eventually(read, "https://as.example/v2") == "https://as.example/v2"
    elsewhere("UPDATE oauthconn_token SET status = %s", [TokenStatus.REVOKED])

    def revoked() -> bool:
        try:
            get_connection("crm").access_token
        except NotConnected:
            return True
        return False

    assert eventually(revoked, True)
    elsewhere("DELETE FROM oauthconn_token")
    assert eventually(lambda: get_connection("crm")._token, None) is None
    # and once heard, the row is kept again: no statement
    assert statements(lambda: get_connection("crm")) == 0


@on_postgres
def test_a_grant_inserted_elsewhere_is_heard_by_a_caller_not_connected(crm, listening):
    Token.objects.all().delete()
    assert get_connection("crm")._token is None
    elsewhere(
        "INSERT INTO oauthconn_token (connection_id, owner_key, access_token, refresh_token,"
        " id_token, dpop_key, token_type, scope, subject, claims, base_values, status,"
        " last_error, last_error_code, failure_count, revocation_pending, updated_at)"
        " SELECT id, '', %s, '', '', '', 'Bearer', '', '', '{}', '{}', 'active', '', '', 0,"
        " false, now() FROM oauthconn_connection",
        [Token.objects.model._meta.get_field("access_token").get_prep_value("at-9")],
    )
    assert eventually(lambda: get_connection("crm").access_token, "at-9") == "at-9"


@on_postgres
def test_a_write_in_the_callers_transaction_is_seen_at_once(crm, listening):
    base_url()
    with transaction.atomic():
        Connection.objects.filter(pk=crm.pk).update(api_base_url="https://b.example/")
        assert base_url() == "https://b.example/"  # no notification until the commit
        transaction.set_rollback(True)
    assert eventually(base_url, "https://a.example/") == "https://a.example/"


@on_postgres
def test_a_save_in_this_process_is_seen_at_once(crm, listening):
    base_url()
    trigger = "oauthconn_connection_changed"
    with db.cursor() as cursor:  # no notification: what is seen is the ORM's signal
        cursor.execute(f"ALTER TABLE oauthconn_connection DISABLE TRIGGER {trigger}")
    try:
        crm.api_base_url = "https://b.example/"
        crm.save()
        assert base_url() == "https://b.example/"
    finally:
        with db.cursor() as cursor:
            cursor.execute(f"ALTER TABLE oauthconn_connection ENABLE TRIGGER {trigger}")


@on_postgres
def test_a_renewal_elsewhere_is_not_notified_and_is_read_when_the_held_token_is_due(
    crm, listening, settings
):
    assert get_connection("crm").access_token == "at-1"
    renewed = timezone.now() + timedelta(hours=3)
    sealed = Token._meta.get_field("access_token").get_prep_value("at-2")
    elsewhere(
        "UPDATE oauthconn_token SET access_token = %s, expires_at = %s, refreshed_at = now()",
        [sealed, renewed],
    )
    time.sleep(0.2)  # time enough for a notification, had there been one
    assert get_connection("crm").access_token == "at-1"  # as a kept object would
    # The held token is due once the leeway passes its expiry: the row is read, and the
    # renewal found there is used (no token request: this provider has no server).
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REFRESH_LEEWAY": 2 * 3600}
    assert get_connection("crm").access_token == "at-2"


@on_postgres
def test_a_lost_listener_vouches_for_nothing_until_it_listens_again(crm, listening):
    base_url()
    assert statements(base_url) == 0
    # Waits until the backend is gone: its FATAL goodbye has reached the feed's socket, the
    # close may not have. Libpq reads that goodbye as a notice, and the feed must take it.
    elsewhere(
        "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
        " WHERE application_name = 'oauthconn changes' AND datname = current_database()"
    )
    # Killed, it cannot hear this: the row must be asked for until the feed listens again.
    elsewhere("UPDATE oauthconn_connection SET api_base_url = 'https://b.example/'")
    assert base_url() == "https://b.example/"
    assert eventually(lambda: listening.listening, True)
    assert eventually(lambda: statements(base_url), 0) == 0
    assert base_url() == "https://b.example/"


@on_postgres
def test_a_feed_told_its_session_ends_stops_vouching_before_the_socket_closes(
    crm, listening, caplog
):
    base_url()
    assert statements(base_url) == 0
    # What a backend sends when another one crashed, before the server closes every session:
    # not a FATAL, a WARNING of class 57P. Here the connection stays open.
    with listening._socket:
        listening._listening.execute(
            "DO $$ BEGIN RAISE WARNING 'terminating connection' USING ERRCODE = '57P02'; END $$"
        )
    assert statements(base_url) == 1  # asked for: the feed no longer vouches
    assert not listening.listening
    assert "closing its connection (57P02: terminating connection)" in caplog.text
    assert eventually(lambda: listening.listening, True)  # it listens again, and vouches
    assert eventually(lambda: statements(base_url), 0) == 0


@pytest.fixture
def fast_probes(monkeypatch):
    monkeypatch.setattr(change_feed, "PROBE_EVERY", 0.2)


@on_postgres
def test_a_feed_that_stops_hearing_its_own_probes_stops_vouching(crm, fast_probes, listening):
    base_url()
    assert statements(base_url) == 0
    with listening._socket:  # what a proxy that does not keep a LISTEN does to it
        listening._listening.execute("UNLISTEN *")
    elsewhere("UPDATE oauthconn_connection SET api_base_url = 'https://b.example/'")
    # Not heard: within a probe's period the feed drops that connection, and the row is
    # asked for; then it listens again and vouches once more.
    assert eventually(base_url, "https://b.example/") == "https://b.example/"
    assert eventually(lambda: statements(base_url), 0) == 0


@on_postgres
def test_a_caller_asks_the_database_rather_than_wait_for_the_feeds_socket(crm, listening):
    base_url()
    assert statements(base_url) == 0
    with listening._socket:  # the listening thread reading, or probing a dead connection
        assert statements(base_url) == 1
    assert statements(base_url) == 0


@on_postgres
def test_a_bulk_statement_over_many_connections_voids_every_kept_row(crm, listening):
    base_url()
    provider = crm.provider
    Connection.objects.bulk_create(
        Connection(slug=f"c{i}", name=f"C{i}", provider=provider, client_id="c")
        for i in range(migration.BULK + 1)
    )
    heard = listening._heard
    Token.objects.bulk_create(
        Token(connection=c, access_token="x") for c in Connection.objects.exclude(pk=crm.pk)
    )
    assert eventually(lambda: listening._heard > heard, True)
    assert statements(base_url) == 1  # asked again (its epoch is void), and unchanged


@on_postgres
def test_a_forked_child_starts_its_own_feed(crm, listening):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: none of the parent's feeds, its locks or its socket
        os.write(write, b"1" if not change_feed._feeds else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert change_feed.feed_for(db) is listening  # the parent's is still there
    # A server that forks from C (uWSGI) runs no os.fork hooks: the feed's pid tells.
    listening.pid = -1
    assert change_feed.feed_for(db) is not listening
    listening.stop()  # no longer in the registry that the fixture stops


@on_postgres
def test_a_child_forked_from_c_does_not_inherit_the_registrys_lock_held(crm, listening):
    """A server that forks from C runs no os.fork hooks, and may fork while another thread
    is making a feed: the child must still make its own instead of waiting forever."""
    c_fork = ctypes.PyDLL(None).fork  # libc's fork, the GIL held across it as a server would
    read, write = os.pipe()
    with change_feed._feeds_lock():  # held at the moment of the fork
        pid = c_fork()
        if pid == 0:
            try:  # whatever happens, the child must never return into pytest
                feed = change_feed.feed_for(db)
                os.write(write, b"1" if feed is not None and feed.pid == os.getpid() else b"0")
            finally:
                os._exit(0)
    try:
        assert select.select([read], [], [], 10)[0], "the child got its own feed within 10 s"
        assert os.read(read, 1) == b"1"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


# --- the triggers -------------------------------------------------------------------------


@pytest.fixture
def heard():
    """What a listener on the channel hears of the statements the test commits."""
    with psycopg.connect(dsn(), autocommit=True) as listener:
        listener.execute(f"LISTEN {migration.CHANNEL}")

        def payloads() -> set[str]:
            return {n.payload for n in listener.notifies(timeout=0.5)}

        yield payloads


@on_postgres
def test_each_change_but_a_renewal_or_a_lease_is_notified(crm, heard):
    token = Token.objects.get()
    heard()
    Token.objects.filter(pk=token.pk).update(
        access_token="at-2",
        expires_at=timezone.now(),
        refreshed_at=timezone.now(),
        lease_until=timezone.now(),
        lifetime=60,
    )
    assert heard() == set()
    Token.objects.filter(pk=token.pk).update(status=TokenStatus.FAILING)
    assert heard() == {f"c{crm.pk}"}
    Connection.objects.filter(pk=crm.pk).update(name="CRM 2")
    assert heard() == {f"c{crm.pk}"}
    Provider.objects.update(name="Q")
    assert heard() == {f"p{crm.provider_id}"}
    Token.objects.all().delete()
    assert heard() == {f"c{crm.pk}"}  # the kept count's update of the connection is not


@on_postgres
def test_every_column_is_watched_unless_a_renewal_or_a_count_writes_it():
    """A later migration that adds a column must recreate the trigger (or list the column)."""
    for model, trigger in (
        (Token, "oauthconn_token_changed"),
        (Connection, "oauthconn_connection_changed"),
    ):
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = %s", [trigger]
            )
            definition = cursor.fetchone()[0]
        unwatched = migration.UNWATCHED[model._meta.db_table]
        for field in model._meta.concrete_fields:
            watched = f"old.{field.column}" in definition.lower()
            assert watched != (field.column in unwatched), (trigger, field.column)


@on_postgres
def test_truncating_a_table_voids_everything(crm, heard):
    heard()
    with db.cursor() as cursor:
        cursor.execute("TRUNCATE oauthconn_token CASCADE")
    assert heard() == {"*"}


@on_postgres
def test_the_migration_creates_and_drops_the_triggers():
    def present() -> set[str]:
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgname = ANY(%s)", [list(migration.TRIGGERS)]
            )
            return {row[0] for row in cursor.fetchall()}

    assert present() == set(migration.TRIGGERS)
    with migrated_back_to("0023_token_owner_index_dropped"):
        assert present() == set()
    assert present() == set(migration.TRIGGERS)


# --- the system check (any database) --------------------------------------------------------


@pytest.mark.django_db
def test_the_check_warns_when_a_database_cannot_notify(settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "LISTEN_FOR_CHANGES": True}
    warnings = check_change_feed()
    if db.vendor == "postgresql":
        assert warnings == []
    else:
        assert [w.id for w in warnings] == ["oauthconn.W004"]

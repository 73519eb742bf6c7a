"""``Connection.held_grants``: the database's own count of a connection's grants that hold
something (migration 0019), which the "not connected" filter reads instead of an anti-join.

The count must follow every way a token row changes, because it is kept by triggers, not by
the flows: the ORM, ``QuerySet.update()``, raw SQL, deletes, bulk inserts, and two
transactions changing two grants of one connection at the same time (PostgreSQL).
"""

from __future__ import annotations

import threading
from importlib import import_module

import pytest
from django.db import connection as db_connection
from django.db import connections, transaction

from oauthconn import status
from oauthconn.models import Connection, Token, TokenStatus
from tests.migrations import (
    migrate_to,
    migrated_back_to,
    provider_and_managers,
    token_table_triggers,
)

migration = import_module("oauthconn.migrations.0019_scale_connection_held_grants")
#: the triggers that keep the counts now (0022: per statement on PostgreSQL)
KEEPING = import_module("oauthconn.migrations.0022_grant_counts_per_statement")


def held_in_fact(connection: Connection) -> int:
    """What the triggers must agree with, counted from the token rows."""
    return Token.objects.holding_grants().filter(connection=connection).count()


def count(connection: Connection) -> int:
    kept = Connection.objects.values_list("held_grants", flat=True).get(pk=connection.pk)
    assert kept == held_in_fact(connection)
    return kept


@pytest.fixture
def crm(provider) -> Connection:
    return Connection.objects.create(slug="crm", name="CRM", provider=provider, per_user=True)


def test_the_triggers_are_in_place_after_every_migration(db):
    """A later migration that rebuilds the token table on SQLite would drop them."""
    assert set(KEEPING.TRIGGERS[db_connection.vendor]) <= token_table_triggers()


def test_the_count_follows_the_orm(crm, django_user_model):
    alice, bob = (django_user_model.objects.create_user(n) for n in ("alice", "bob"))
    grant = Token.objects.create(connection=crm, owner=alice)  # an empty row holds nothing
    assert count(crm) == 0

    grant.access_token = "at"
    grant.save()
    assert count(crm) == 1
    Token.objects.create(connection=crm, owner=bob, status=TokenStatus.NEEDS_REAUTH)
    assert count(crm) == 2

    grant.status = TokenStatus.FAILING  # still holding: no change
    grant.save()
    assert count(crm) == 2
    grant.clear_credentials()
    grant.status = TokenStatus.REVOKED  # disconnected: revoked still counts as a grant
    grant.save()
    assert count(crm) == 2
    grant.status = TokenStatus.ACTIVE
    grant.save()
    assert count(crm) == 1

    Token.objects.filter(owner=bob).delete()
    assert count(crm) == 0


def test_the_count_follows_bulk_updates_raw_sql_and_moves(crm, provider, django_user_model):
    users = [django_user_model.objects.create_user(f"u{n}") for n in range(3)]
    Token.objects.bulk_create(Token(connection=crm, owner=u, access_token="at") for u in users)
    assert count(crm) == 3

    Token.objects.filter(owner=users[0]).update(status=TokenStatus.REVOKED, access_token=None)
    assert count(crm) == 3
    Token.objects.filter(owner=users[0]).update(status=TokenStatus.ACTIVE)
    assert count(crm) == 2
    with db_connection.cursor() as cursor:
        cursor.execute(
            "UPDATE oauthconn_token SET access_token = NULL WHERE owner_id = %s", [users[1].pk]
        )
    assert count(crm) == 1

    other = Connection.objects.create(slug="o", name="O", provider=provider, per_user=True)
    Token.objects.filter(owner=users[2]).update(connection=other)
    assert (count(crm), count(other)) == (0, 1)


def test_saving_a_connection_does_not_write_back_a_stale_count(crm, django_user_model):
    stale = Connection.objects.get(pk=crm.pk)
    Token.objects.create(connection=crm, owner=django_user_model.objects.create_user("a"),
                         access_token="at")  # fmt: skip

    stale.name = "CRM (renamed)"
    stale.save()

    assert count(crm) == 1
    assert Connection.objects.get(pk=crm.pk).name == "CRM (renamed)"


def test_deleting_a_connection_with_grants_works(crm, django_user_model):
    Token.objects.create(connection=crm, owner=django_user_model.objects.create_user("a"),
                         access_token="at")  # fmt: skip
    crm.delete()
    assert not Token.objects.exists()


def test_the_not_connected_filter_reads_the_count_and_agrees_with_the_anti_join(
    provider, django_user_model, monkeypatch
):
    user = django_user_model.objects.create_user("u")
    states = {
        "no-rows": [],
        "empty-row": [{}],
        "connected": [{"access_token": "at"}],
        "revoked": [{"status": TokenStatus.REVOKED}],
        "empty-and-failing": [{}, {"status": TokenStatus.FAILING, "owner": user}],
    }
    for slug, rows in states.items():
        conn = Connection.objects.create(slug=slug, name=slug, provider=provider, per_user=True)
        for fields in rows:
            Token.objects.create(connection=conn, **fields)

    filtered = status.filter_connections(Connection.objects.all(), status.NOT_CONNECTED)
    # The same filter on a database without the triggers: the anti-join.
    monkeypatch.setattr(status, "keeps_grant_counts", lambda alias: False)
    anti_join = status.filter_connections(Connection.objects.all(), status.NOT_CONNECTED)

    assert '"held_grants" = 0' in str(filtered.query)
    assert "EXISTS" not in str(filtered.query)
    assert "NOT EXISTS" in str(anti_join.query)
    assert sorted(c.slug for c in filtered) == ["empty-row", "no-rows"]
    assert sorted(c.slug for c in anti_join) == ["empty-row", "no-rows"]


def connection_table_stat(column: str) -> int:
    """A counter of this backend's work on the connection table not yet reported (PostgreSQL's
    ``pg_stat_xact_user_tables``: ``n_tup_upd`` rows updated, ``seq_scan`` scans). Read it
    inside one transaction: outside, PostgreSQL 15 reports the counters when the backend is
    idle, at most once a second, and they start from zero again (the tests' grants are
    committed: ``live_server``)."""
    with db_connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {column} FROM pg_stat_xact_user_tables WHERE relname = 'oauthconn_connection'"
        )
        return cursor.fetchone()[0]


@pytest.mark.postgres
def test_a_statement_over_many_grants_updates_their_connection_once(crm, django_user_model):
    """Row triggers updated the connection row once per grant: one statement over a popular
    connection's grants made a chain of thousands of row versions (quadratic)."""
    users = django_user_model.objects.bulk_create(
        django_user_model(username=f"user{n}") for n in range(40)
    )
    with transaction.atomic():  # (the counters stay this backend's until it commits)
        before = connection_table_stat("n_tup_upd")
        Token.objects.bulk_create(Token(connection=crm, owner=u, access_token="at") for u in users)
        assert count(crm) == 40
        Token.objects.filter(connection=crm).update(access_token=None)  # all stop holding
        assert count(crm) == 0
        Token.objects.filter(connection=crm).update(status=TokenStatus.REVOKED)  # hold again
        Token.objects.filter(connection=crm).delete()
        assert count(crm) == 0
        assert connection_table_stat("n_tup_upd") - before == 4


@pytest.mark.postgres
def test_the_counts_trigger_finds_connections_by_key_after_the_table_grows(crm, provider):
    """PostgreSQL may keep a function's plan once it has run five times. Kept while the
    connection table was small, the plan scanned the whole table for each moved connection
    after it grew: the benchmark's 100,000-grant COPY ran for over ten minutes. A fresh plan
    for each update (``EXECUTE``) reads the primary key whatever the table's size was."""
    with db_connection.cursor() as cursor:
        cursor.execute("ANALYZE oauthconn_connection")  # statistics of a small table
    grant = Token.objects.create(connection=crm, access_token="at")
    for _ in range(4):  # past the five plans after which a plan may be kept
        Token.objects.filter(pk=grant.pk).update(access_token=None)
        Token.objects.filter(pk=grant.pk).update(access_token="at")
    grown = Connection.objects.bulk_create(
        Connection(slug=f"c{n}", name=f"C{n}", provider=provider) for n in range(1000)
    )
    Token.objects.bulk_create(Token(connection=c, access_token="at") for c in grown)
    with transaction.atomic():  # (the counters stay this backend's until it commits)
        scans = connection_table_stat("seq_scan")
        Token.objects.filter(connection__in=grown).update(access_token=None)
        assert connection_table_stat("seq_scan") == scans
    assert Connection.objects.filter(pk__in=[c.pk for c in grown], held_grants=0).count() == 1000


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_grants_of_one_connection_changing_at_once_are_both_counted(crm, django_user_model):
    """Each transaction sees the other's grant still holding (neither has committed): a
    recount would say "still connected" in both. Increments under the row lock do not."""
    users = [django_user_model.objects.create_user(f"u{n}") for n in range(2)]
    grants = [Token.objects.create(connection=crm, owner=u, access_token="at") for u in users]
    both_read = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def disconnect(grant: Token) -> None:
        try:
            with transaction.atomic():
                assert count(crm) == 2  # both see both grants holding, then both write
                both_read.wait()
                # The second trigger waits for the first transaction's lock on the
                # connection row, then subtracts from the committed count.
                Token.objects.filter(pk=grant.pk).update(access_token=None)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=disconnect, args=(g,)) for g in grants]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors
    assert count(crm) == 0


@pytest.mark.django_db(transaction=True)
def test_the_migration_counts_the_grants_that_exist():
    with migrated_back_to("0018_scale_connection_name_search") as old:
        provider, conn, tokens = provider_and_managers(old)
        held = conn.create(slug="held", name="H", provider=provider, client_id="c")
        tokens.create(connection=held, status="revoked")
        empty = conn.create(slug="empty", name="E", provider=provider, client_id="c")
        tokens.create(connection=empty)

        migrate_to("0019_scale_connection_held_grants")
    counts = dict(Connection.objects.values_list("slug", "held_grants"))
    assert counts == {"held": 1, "empty": 0}
    Token.objects.filter(connection__slug="empty").update(access_token="at")  # triggers again
    assert Connection.objects.get(slug="empty").held_grants == 1

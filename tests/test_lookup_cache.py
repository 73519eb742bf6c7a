"""``get_connection`` never serves a stale row (issue 11, target 3).

On SQLite the lookup skips its statement while ``PRAGMA data_version`` and the connection's
``total_changes`` say nothing was written (:mod:`oauthconn.flows.lookup`); on PostgreSQL the
statement always runs. Either way, a write by any path, in this thread, another thread or
another process, is seen by the next call, and a rolled-back write is not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from django.db import connection as db
from django.db import transaction
from django.utils import timezone

from oauthconn import get_connection
from oauthconn.exceptions import NotConnected
from oauthconn.models import Connection, Provider, Token, TokenStatus
from tests.postgres import dsn

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def crm(db):
    provider = Provider.objects.create(
        slug="p", name="P", token_endpoint="https://as.example/token"
    )
    connection = Connection.objects.create(
        slug="crm", name="CRM", provider=provider, client_id="c", api_base_url="https://a.example/"
    )
    expires = timezone.now() + timedelta(hours=1)
    Token.objects.create(connection=connection, access_token="at-1", expires_at=expires)
    assert get_connection("crm").access_token == "at-1"  # the row is kept from here on
    assert get_connection("crm").access_token == "at-1"  # (and served again)
    return connection


def base_url() -> str:
    return get_connection("crm").api_base_url()


def test_save_of_each_model_is_seen_by_the_next_call(crm):
    crm.api_base_url = "https://b.example/"
    crm.save()
    assert base_url() == "https://b.example/"
    provider = Provider.objects.get(slug="p")
    provider.token_endpoint = "https://as.example/v2/token"
    provider.save()
    assert get_connection("crm").connection.provider.token_endpoint.endswith("/v2/token")
    token = Token.objects.get(connection=crm)
    token.access_token = "at-2"
    token.save()
    assert get_connection("crm").access_token == "at-2"


def test_update_delete_and_raw_sql_are_seen_by_the_next_call(crm):
    Connection.objects.filter(pk=crm.pk).update(api_base_url="https://b.example/")
    assert base_url() == "https://b.example/"
    with db.cursor() as cursor:
        table, column = Connection._meta.db_table, "api_base_url"
        cursor.execute(
            f"UPDATE {table} SET {column} = %s WHERE id = %s", ["https://c.example/", crm.pk]
        )
    assert base_url() == "https://c.example/"
    Token.objects.filter(connection=crm).update(status=TokenStatus.REVOKED)
    with pytest.raises(NotConnected):
        get_connection("crm").access_token
    Token.objects.filter(connection=crm).delete()
    assert get_connection("crm")._token is None


def test_a_write_from_another_thread_is_seen_by_the_next_call(crm):
    def write() -> None:
        try:
            Connection.objects.filter(pk=crm.pk).update(api_base_url="https://b.example/")
        finally:
            db.close()

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()
    assert base_url() == "https://b.example/"


WRITER = """
import os
import sys
driver, url = sys.argv[1:]
name = os.environ["WRITER_DATABASE"]  # not in argv: a DSN may hold a password
if driver == "sqlite":
    import sqlite3
    with sqlite3.connect(name) as conn:
        conn.execute("UPDATE oauthconn_connection SET api_base_url = ? WHERE slug = 'crm'", [url])
else:  # the driver Django uses: psycopg, or psycopg2
    import importlib
    conn = importlib.import_module(driver).connect(name)
    conn.autocommit = True
    sql = "UPDATE oauthconn_connection SET api_base_url = %s WHERE slug = 'crm'"
    conn.cursor().execute(sql, [url])
    conn.close()
"""


def test_a_write_from_another_process_is_seen_by_the_next_call(crm):
    if db.vendor == "sqlite":
        name = db.settings_dict["NAME"]
        assert os.path.exists(name), "the test database is a file another process can open"
    else:
        name = dsn()
    driver = "sqlite" if db.vendor == "sqlite" else db.Database.__name__
    argv = [sys.executable, "-c", WRITER, driver, "https://b.example/"]
    subprocess.run(argv, check=True, timeout=60, env={**os.environ, "WRITER_DATABASE": name})
    assert base_url() == "https://b.example/"


def test_a_rolled_back_write_is_never_served(crm):
    with transaction.atomic():
        Connection.objects.filter(pk=crm.pk).update(api_base_url="https://b.example/")
        assert base_url() == "https://b.example/"  # this transaction's own write
        transaction.set_rollback(True)
    assert base_url() == "https://a.example/"
    assert base_url() == "https://a.example/"


def test_a_row_read_inside_a_transaction_is_not_served_after_its_rollback(crm):
    with transaction.atomic():
        assert base_url() == "https://a.example/"  # a read inside, before the write
        Connection.objects.filter(pk=crm.pk).update(api_base_url="https://b.example/")
        assert base_url() == "https://b.example/"
        transaction.set_rollback(True)
    assert base_url() == "https://a.example/"


def test_a_new_database_connection_reads_the_row_again(crm):
    db.close()  # Django reconnects: a new sqlite3 connection, whose counters start over
    Connection.objects.filter(pk=crm.pk).update(api_base_url="https://b.example/")
    assert base_url() == "https://b.example/"


def test_two_writes_in_one_transaction_are_each_seen(crm):
    # PostgreSQL: both tuples carry the same xmin (one transaction); their ctid differs.
    with transaction.atomic():
        for url in ("https://b.example/", "https://c.example/"):
            Connection.objects.filter(pk=crm.pk).update(api_base_url=url)
            assert base_url() == url


def test_a_token_changed_in_place_does_not_change_the_next_calls_token(crm):
    Token.objects.filter(connection=crm).update(claims={"sub": "alice"})
    first = get_connection("crm")._token
    first.claims["sub"] = "mallory"  # what code holding a token may do to its own instance
    assert get_connection("crm")._token.claims == {"sub": "alice"}

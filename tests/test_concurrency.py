"""Single-flight refresh under a storm, against django-oauth-toolkit with rotating refresh
tokens whose reuse is rejected (SECURITY R35, F5, F6).

All need PostgreSQL (marked ``postgres``). Worker processes are ``python -c`` subprocesses
with the same settings, pointed at the test database. The thread storm is not run on SQLite:
Django's in-memory test database uses SQLite's shared cache, where a read that meets a write
fails at once ("database table is locked") instead of waiting as a file database does; see
docs/lifecycle.md for what SQLite guarantees.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection as db_connection
from django.db import connections
from django.utils import timezone

from oauthconn import get_connection, http
from oauthconn.exceptions import Busy, InvalidGrant, TemporarilyUnavailable
from oauthconn.flows.common import credentials_for
from oauthconn.models import Token, TokenStatus
from oauthconn.oauth.token import refresh_token_grant
from tests.conftest import authorize
from tests.postgres import database_url

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
THREADS = 50
PROCESSES = 4
THREADS_PER_PROCESS = 2

# A worker process: "fetch" asks for the token from several threads once told to go;
# "hold" takes the token's row lock (optionally spending the refresh token at the provider,
# as a worker killed after the provider answered would) and then waits to be killed.
WORKER = r"""
import json, sys, threading, time
import django
django.setup()
from django.db import connections, transaction
from oauthconn import get_connection, http
from oauthconn.flows.common import credentials_for
from oauthconn.models import Token
from oauthconn.oauth.token import refresh_token_grant

mode, slug, count = sys.argv[1], sys.argv[2], int(sys.argv[3])

def fetch(results, i, barrier):
    barrier.wait()
    try:
        results[i] = get_connection(slug).access_token
    except Exception as err:
        results[i] = f"error: {type(err).__name__}: {err}"
    finally:
        connections.close_all()

if mode == "fetch":
    results, barrier = [None] * count, threading.Barrier(count + 1)
    threads = [threading.Thread(target=fetch, args=(results, i, barrier)) for i in range(count)]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    sys.stdin.readline()
    barrier.wait()
    for thread in threads:
        thread.join()
    print(json.dumps(results), flush=True)
else:
    with transaction.atomic():
        token = (
            Token.objects.select_for_update(of=("self",))
            .select_related("connection__provider")
            .get(connection__slug=slug)
        )
        if mode == "spend":
            with http.build_client() as client:
                refresh_token_grant(
                    client,
                    token.connection.provider.token_endpoint,
                    refresh_token=token.refresh_token.reveal(),
                    credentials=credentials_for(token.connection),
                )
        print("locked", flush=True)
        time.sleep(600)
"""


@pytest.fixture
def strict_provider(settings):
    """DOT rotates refresh tokens and rejects (and punishes) any reuse of an old one."""
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "ROTATE_REFRESH_TOKEN": True,
        "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
        "REFRESH_TOKEN_REUSE_PROTECTION": True,
    }


@pytest.fixture
def expired(strict_provider, staff_client, make_connection, as_log):
    connection = make_connection()
    authorize(staff_client, connection)
    Token.objects.filter(connection=connection).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    as_log.clear()
    return connection


def refresh_requests(as_log) -> list:
    return [r for r in as_log.to("/demo-oauth/token/") if r.form["grant_type"] == ["refresh_token"]]


def ask_from_threads(
    count: int, slug: str = "crm"
) -> tuple[list[str], threading.Barrier, list[threading.Thread]]:
    """Start ``count`` threads that ask for the token together once the barrier opens."""
    results: list[str] = [""] * count
    barrier = threading.Barrier(count + 1)

    def ask(i: int) -> None:
        barrier.wait()
        try:
            results[i] = get_connection(slug).access_token
        except Exception as err:  # noqa: BLE001 - the test reports any failure
            results[i] = f"error: {type(err).__name__}: {err}"
        finally:
            connections.close_all()  # each thread has its own database connection

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    return results, barrier, threads


def assert_one_refresh_and_everyone_served(as_log, connection, results, old_refresh) -> None:
    token = Token.objects.get(connection=connection)
    assert [r for r in results if r.startswith("error")] == []
    assert set(results) == {token.access_token.reveal()}
    assert len(refresh_requests(as_log)) == 1
    assert token.status == TokenStatus.ACTIVE and token.refresh_token.reveal() != old_refresh
    # The provider really would have punished a second spend of the old refresh token:
    with http.build_client() as client, pytest.raises(InvalidGrant):
        refresh_token_grant(
            client,
            connection.provider.token_endpoint,
            refresh_token=old_refresh,
            credentials=credentials_for(connection),
        )


@pytest.mark.postgres
def test_fifty_threads_cause_one_refresh(expired, as_log):
    old_refresh = Token.objects.get(connection=expired).refresh_token.reveal()
    results, barrier, threads = ask_from_threads(THREADS)
    barrier.wait()
    for thread in threads:
        thread.join()
    assert_one_refresh_and_everyone_served(as_log, expired, results, old_refresh)


# --- across processes (PostgreSQL) --------------------------------------------------------


def subprocess_env() -> dict[str, str]:
    """Settings for a worker process: the same ones, pointed at the test database."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(os.environ["DATABASE_URL"]),
        "PYTHONPATH": str(ROOT),
    }


def worker(mode: str, slug: str = "crm", count: int = 0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, mode, slug, str(count)],
        cwd=ROOT,
        env=subprocess_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def expect_line(process: subprocess.Popen, expected: str) -> None:
    line = process.stdout.readline().strip()
    if line != expected:
        process.kill()
        pytest.fail(f"worker said {line!r}: {process.stderr.read()[-2000:]}")


@pytest.mark.postgres
def test_fifty_threads_and_four_processes_cause_one_refresh(expired, as_log):
    old_refresh = Token.objects.get(connection=expired).refresh_token.reveal()
    processes = [worker("fetch", count=THREADS_PER_PROCESS) for _ in range(PROCESSES)]
    for process in processes:
        expect_line(process, "ready")
    results, barrier, threads = ask_from_threads(THREADS)

    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    barrier.wait()
    for thread in threads:
        thread.join()
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
        results += json.loads(out.strip().splitlines()[-1])

    assert len(results) == THREADS + PROCESSES * THREADS_PER_PROCESS
    assert_one_refresh_and_everyone_served(as_log, expired, results, old_refresh)


def wait_until_someone_waits_for_a_lock() -> None:
    """Poll PostgreSQL until a backend of this database waits on a lock (synchronization)."""
    for _ in range(600):
        with db_connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.05)
    pytest.fail("nobody waited for the row lock")


@pytest.mark.postgres
@pytest.mark.parametrize("spent", [False, True], ids=["died-before-asking", "died-after-asking"])
def test_a_worker_dies_holding_the_refresh_lock(expired, as_log, settings, spent):
    """The waiter proceeds as soon as PostgreSQL drops the dead worker's lock. If the dead
    worker had already spent the rotating refresh token, the connection needs
    reauthorization and says why; otherwise the waiter refreshes normally."""
    settings.OAUTHCONN = {**settings.OAUTHCONN, "LOCK_TIMEOUT": 120}  # no timeout helps it
    holder = worker("spend" if spent else "hold")
    expect_line(holder, "locked")
    results, barrier, threads = ask_from_threads(1)
    barrier.wait()
    wait_until_someone_waits_for_a_lock()

    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    threads[0].join(timeout=60)

    assert not threads[0].is_alive()
    token = Token.objects.get(connection=expired)
    assert len(refresh_requests(as_log)) == (2 if spent else 1)
    if spent:
        assert results[0].startswith("error: ReauthorizationRequired")
        assert token.status == TokenStatus.NEEDS_REAUTH
        assert token.last_error.startswith("Reauthorize the connection: The provider rejected")
    else:
        assert results == [token.access_token.reveal()]
        assert token.status == TokenStatus.ACTIVE


@pytest.mark.postgres
def test_a_waiter_gives_up_after_the_lock_timeout(expired, as_log, settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "LOCK_TIMEOUT": 0.5}
    holder = worker("hold")
    expect_line(holder, "locked")
    try:
        with pytest.raises(TemporarilyUnavailable, match="Timed out waiting") as caught:
            get_connection("crm").access_token  # noqa: B018
        assert isinstance(caught.value, Busy) and caught.value.code == "busy"
        token = Token.objects.get(connection=expired)
        assert token.status == TokenStatus.ACTIVE and token.failure_count == 0
        assert refresh_requests(as_log) == []
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert get_connection("crm").access_token  # the lock is gone: the refresh now works

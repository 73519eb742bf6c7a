"""Defect 6: tokens that live shorter than REFRESH_LEEWAY are refreshed once per expiry.

Against django-oauth-toolkit over real HTTP, issuing access tokens of a few seconds
(``ACCESS_TOKEN_EXPIRE_SECONDS`` per test) and rotating refresh tokens whose reuse it
rejects. The AS log counts the refresh requests. With the default leeway of 60 s, a token
that lives 5 s used to be due the moment it arrived: every caller refreshed it again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone
from oauth2_provider.views.mixins import OAuthLibMixin

from oauthconn import get_connection
from oauthconn.models import Connection, Token
from tests.conftest import authorize
from tests.test_concurrency import (
    ROOT,
    assert_one_refresh_and_everyone_served,
    expect_line,
    refresh_requests,
    strict_provider,  # noqa: F401 - a fixture used below
    subprocess_env,
)

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 20


@pytest.fixture
def short_lived(strict_provider, settings, staff_client, make_connection, as_log):  # noqa: F811
    """Authorize "crm" at a provider whose access tokens live ``lifetime`` seconds."""

    def connect(lifetime: int) -> Connection:
        settings.OAUTH2_PROVIDER = {
            **settings.OAUTH2_PROVIDER,
            "ACCESS_TOKEN_EXPIRE_SECONDS": lifetime,
            # DOT's token view keeps its first server (and so its lifetime) otherwise.
            "ALWAYS_RELOAD_OAUTHLIB_CORE": True,
        }
        connection = make_connection()
        authorize(staff_client, connection)
        assert Token.objects.get(connection=connection).lifetime == lifetime
        as_log.clear()
        return connection

    yield connect
    forget_dot_servers()


def forget_dot_servers() -> None:
    """DOT's views keep the first oauthlib server they build (with its token lifetime) on
    the class; drop ours so later tests get one built from their own settings."""
    classes: list[type] = [OAuthLibMixin]
    while classes:
        cls = classes.pop()
        classes += cls.__subclasses__()
        if "_oauthlib_core" in vars(cls):
            delattr(cls, "_oauthlib_core")


def expire(connection: Connection) -> str:
    """Make the stored token expired (its lifetime stays); return its refresh token."""
    Token.objects.filter(connection=connection).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    return Token.objects.get(connection=connection).refresh_token.reveal()


def wait_until_expired(connection: Connection) -> None:
    expires_at = Token.objects.get(connection=connection).expires_at
    time.sleep(max((expires_at - timezone.now()).total_seconds(), 0) + 0.05)


# --- back-to-back calls ---------------------------------------------------------------------


def test_a_token_just_obtained_is_served_not_refreshed_again(short_lived, as_log):
    short_lived(5)
    kept = get_connection("crm")

    served = [kept.access_token for _ in range(5)]
    served += [get_connection("crm").access_token for _ in range(5)]

    assert refresh_requests(as_log) == []
    assert set(served) == {Token.objects.get(connection__slug="crm").access_token.reveal()}


@pytest.mark.parametrize("through", ["one-object", "fresh-lookups"])
def test_back_to_back_calls_send_one_refresh_per_expiry(short_lived, as_log, through):
    connection = short_lived(1)
    kept = get_connection("crm")

    def five_calls() -> set[str]:
        if through == "one-object":
            return {kept.access_token for _ in range(5)}
        return {get_connection("crm").access_token for _ in range(5)}

    seen: set[str] = set()
    for expiry in (1, 2):
        wait_until_expired(connection)
        served = five_calls()
        assert len(refresh_requests(as_log)) == expiry
        assert len(served) == 1 and not served & seen
        seen |= served


def test_a_long_lifetime_keeps_the_configured_leeway(short_lived, as_log):
    """One hour: refreshed within REFRESH_LEEWAY (60 s) of the expiry, not earlier."""
    connection = short_lived(3600)
    Token.objects.filter(connection=connection).update(
        expires_at=timezone.now() + timedelta(seconds=120)
    )
    get_connection("crm").access_token  # noqa: B018
    assert refresh_requests(as_log) == []

    Token.objects.filter(connection=connection).update(
        expires_at=timezone.now() + timedelta(seconds=30)
    )
    get_connection("crm").access_token  # noqa: B018
    assert len(refresh_requests(as_log)) == 1


# --- thread storms ----------------------------------------------------------------------------


def ask_from_threads(count: int, spread: float) -> tuple[list[str], threading.Barrier, list]:
    """``count`` threads released by one barrier, the i-th asking ``i * spread / count``
    seconds later (``spread`` 0: all together)."""
    results: list[str] = [""] * count
    barrier = threading.Barrier(count + 1)

    def ask(i: int) -> None:
        barrier.wait()
        time.sleep(i * spread / count)
        try:
            results[i] = get_connection("crm").access_token
        except Exception as err:  # noqa: BLE001 - the test reports any failure
            results[i] = f"error: {type(err).__name__}: {err}"
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    return results, barrier, threads


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("lifetime", "spread"),
    [(1, 0.0), (5, 0.0), (5, 1.0), (3600, 1.0)],
    ids=["1s-together", "5s-together", "5s-spread-over-1s", "1h-spread-over-1s"],
)
def test_a_thread_storm_sends_one_refresh(short_lived, as_log, lifetime, spread):
    connection = short_lived(lifetime)
    old_refresh = expire(connection)

    results, barrier, threads = ask_from_threads(THREADS, spread)
    barrier.wait()
    for thread in threads:
        thread.join()

    assert_one_refresh_and_everyone_served(as_log, connection, results, old_refresh)


# --- across processes (PostgreSQL) ------------------------------------------------------------

# Threads of a worker process ask together once told to go, the i-th after i * spread / count s.
WORKER = r"""
import json, sys, threading, time
import django
django.setup()
from django.db import connections
from oauthconn import get_connection

count, spread = int(sys.argv[1]), float(sys.argv[2])

def fetch(results, i, barrier):
    barrier.wait()
    time.sleep(i * spread / count)
    try:
        results[i] = get_connection("crm").access_token
    except Exception as err:
        results[i] = f"error: {type(err).__name__}: {err}"
    finally:
        connections.close_all()

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
"""


def storm_processes(processes: int, threads: int, spread: float) -> list[str]:
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(threads), str(spread)],
            cwd=ROOT,
            env=subprocess_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for worker in workers:
        expect_line(worker, "ready")
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    results: list[str] = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-2000:]
        results += json.loads(out.strip().splitlines()[-1])
    return results


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("lifetime", "spread"),
    [(1, 0.0), (5, 0.0), (5, 1.0)],
    ids=["1s-together", "5s-together", "5s-spread-over-1s"],
)
def test_two_processes_of_ten_threads_send_one_refresh(short_lived, as_log, lifetime, spread):
    connection = short_lived(lifetime)
    old_refresh = expire(connection)

    results = storm_processes(2, 10, spread)

    assert len(results) == 20
    assert_one_refresh_and_everyone_served(as_log, connection, results, old_refresh)

"""Proactive refresh: the ``oauthconn_refresh`` command and the Celery task, against
django-oauth-toolkit over real HTTP (failures from a scripted token endpoint)."""

from __future__ import annotations

import importlib
import io
import re
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.utils import timezone

from oauthconn import get_connection
from oauthconn.flows.proactive import Policy, refresh_due
from oauthconn.models import Connection, GrantType, Provider, Token, TokenStatus
from tests.conftest import authorize
from tests.scripted_server import Reply
from tests.test_concurrency import ROOT, expect_line, subprocess_env, worker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def connect(staff_client, make_connection, as_log):
    """Authorize a new connection at DOT, then set its token's fields."""

    def make(slug: str, **token_fields) -> Connection:
        connection = make_connection(slug)
        authorize(staff_client, connection)
        Token.objects.filter(connection=connection).update(**token_fields)
        as_log.clear()
        return connection

    return make


def in_(**delta) -> timezone.datetime:
    return timezone.now() + timedelta(**delta)


def refreshed_tokens(as_log) -> list[str]:
    """The refresh tokens DOT was asked to redeem."""
    return [r.form["refresh_token"][0] for r in as_log.to("/demo-oauth/token/")]


def refresh_token_of(connection: Connection) -> str:
    return Token.objects.get(connection=connection).refresh_token.reveal()


def run(*args: str, stdout=None) -> str:
    out = stdout or io.StringIO()
    call_command("oauthconn_refresh", *args, stdout=out)
    return out.getvalue()


def test_refreshes_what_is_due_and_leaves_the_rest(connect, as_log, make_connection):
    soon = connect("soon", expires_at=in_(minutes=5))
    connect("later", expires_at=in_(hours=2))
    connect("broken", expires_at=in_(minutes=1), status=TokenStatus.NEEDS_REAUTH)
    connect("backing-off", expires_at=in_(minutes=1), next_attempt_at=in_(minutes=3))
    old = refresh_token_of(soon)

    output = run()

    assert output.strip() == "refreshed 1, failed 0, needs reauthorization 0, skipped 0"
    assert refreshed_tokens(as_log) == [old]
    token = Token.objects.get(connection=soon)
    assert token.expires_at > in_(minutes=30) and token.refresh_token.reveal() != old
    assert Token.objects.get(connection__slug="broken").status == TokenStatus.NEEDS_REAUTH


def test_verbosity_2_tells_what_the_run_took(connect, as_log):
    connect("soon", expires_at=in_(minutes=5))
    connect("later", expires_at=in_(hours=2))

    took, summary = run("--verbosity", "2").strip().splitlines()

    found = re.fullmatch(
        r"Due tokens: 1, in (\d+\.\d+) s and (\d+\.\d+) s of CPU \((\d+) per second\)\.",
        took,
    )
    assert found, took
    wall, cpu, rate = float(found[1]), float(found[2]), int(found[3])
    assert wall > 0 and cpu > 0 and abs(rate * wall - 1) < 0.1  # one token in that time
    assert summary == "refreshed 1, failed 0, needs reauthorization 0, skipped 0"


def test_the_window_is_an_option(connect, as_log):
    # A 10-hour token: a window is capped to a quarter of the lifetime (Token.needs_refresh).
    later = connect("later", expires_at=in_(hours=2), lifetime=10 * 3600)
    assert "refreshed 0" in run()
    assert "refreshed 1" in run("--window", str(3 * 3600))
    assert refreshed_tokens(as_log) != [] and Token.objects.get(connection=later).refreshed_at


def test_idle_refresh_tokens_are_kept_alive(connect, as_log):
    idle = connect("idle", expires_at=in_(hours=2), refreshed_at=in_(days=-40))
    connect("used", expires_at=in_(hours=2), refreshed_at=in_(days=-2))
    old = refresh_token_of(idle)

    assert "refreshed 0" in run("--idle-days", "0")  # turned off
    assert "refreshed 1" in run()  # IDLE_REFRESH_DAYS defaults to 30

    assert refreshed_tokens(as_log) == [old]


def test_refresh_tokens_about_to_expire_are_renewed_once(connect, as_log):
    ending = connect(
        "ending", expires_at=in_(hours=2), refresh_expires_at=in_(hours=3), refreshed_at=None
    )
    connect("not-yet", expires_at=in_(hours=2), refresh_expires_at=in_(days=5))

    assert "refreshed 1" in run()
    # DOT's new refresh token announces no expiry; had it kept the old expiry, the run right
    # after would still leave the token alone (refreshed within the last hour).
    Token.objects.filter(connection=ending).update(refresh_expires_at=in_(hours=3))
    assert "refreshed 0" in run()
    assert len(refreshed_tokens(as_log)) == 1


def test_several_connections_with_bounded_concurrency(connect, as_log):
    connections = [connect(f"c{i}", expires_at=in_(minutes=1)) for i in range(5)]
    old = {refresh_token_of(c) for c in connections}

    assert "refreshed 5, failed 0" in run("--concurrency", "3")

    assert sorted(refreshed_tokens(as_log)) == sorted(old)
    assert all(Token.objects.get(connection=c).status == TokenStatus.ACTIVE for c in connections)


@pytest.fixture
def scripted_connection(scripted_server):
    def make(slug: str, *replies: Reply) -> Connection:
        endpoint = scripted_server.url(f"/{slug}/token")
        provider = Provider.objects.create(slug=slug, name=slug, token_endpoint=endpoint)
        connection = Connection.objects.create(
            slug=slug, name=slug, provider=provider, client_id="c", client_secret="s"
        )
        Token.objects.create(
            connection=connection, access_token="a", refresh_token="r", expires_at=in_(minutes=2)
        )
        scripted_server.add(f"/{slug}/token", *replies)
        return connection

    return make


def test_failures_are_counted_and_exit_non_zero(scripted_connection, scripted_server):
    scripted_connection("down", Reply(status=503, body="down"))
    scripted_connection("gone", Reply(status=400, body={"error": "invalid_grant"}))
    good = {"access_token": "a2", "token_type": "Bearer", "expires_in": 3600}
    scripted_connection("fine", Reply(body=good))
    out = io.StringIO()

    with pytest.raises(CommandError, match="could not be refreshed"):
        run(stdout=out)

    assert out.getvalue().strip() == ("refreshed 1, failed 1, needs reauthorization 1, skipped 0")
    down = Token.objects.get(connection__slug="down")
    assert down.status == TokenStatus.FAILING and down.access_token.reveal() == "a"
    assert Token.objects.get(connection__slug="gone").status == TokenStatus.NEEDS_REAUTH
    # The next run leaves the failing one to its backoff and the broken one alone.
    assert run().strip() == "refreshed 0, failed 0, needs reauthorization 0, skipped 0"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal(connect):
    connect("soon", expires_at=in_(minutes=1))
    output = run(stdout=Terminal())
    assert "\r[" + "#" * 30 + "] 1/1" in output
    assert output.rstrip().endswith("refreshed 1, failed 0, needs reauthorization 0, skipped 0")


def test_rejects_a_zero_concurrency():
    with pytest.raises(CommandError, match="at least 1"):
        run("--concurrency", "0")


def test_celery_task(connect, as_log):
    from oauthconn.tasks import TASK_NAME, refresh_connections

    connect("soon", expires_at=in_(minutes=1))
    result = refresh_connections.apply(kwargs={"window": 600}).get()
    assert result == {"refreshed": 1, "failed": 0, "needs_reauth": 0, "skipped": 0}
    assert refresh_connections.name == TASK_NAME
    assert len(refreshed_tokens(as_log)) == 1


def test_the_task_module_imports_without_celery(monkeypatch):
    monkeypatch.setitem(sys.modules, "celery", None)  # makes `import celery` fail
    monkeypatch.delitem(sys.modules, "oauthconn.tasks", raising=False)
    tasks = importlib.import_module("oauthconn.tasks")
    with pytest.raises(ImproperlyConfigured, match="needs Celery"):
        tasks.refresh_connections()


# --- several copies at once (PostgreSQL) ----------------------------------------------------


@pytest.mark.postgres
def test_rows_another_copy_holds_are_skipped_not_waited_on(connect, as_log):
    connect("crm", expires_at=in_(minutes=1))
    connect("other", expires_at=in_(minutes=1))
    holder = worker("hold", "crm")
    expect_line(holder, "locked")
    try:
        output = run()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert output.strip() == "refreshed 1, failed 0, needs reauthorization 0, skipped 1"
    assert len(refreshed_tokens(as_log)) == 1


@pytest.mark.postgres
def test_two_copies_on_two_hosts_refresh_each_token_once(connect, as_log):
    connections = [connect(f"c{i}", expires_at=in_(minutes=1)) for i in range(8)]
    command = [sys.executable, "-m", "django", "oauthconn_refresh", "--concurrency", "2"]
    command.append("--skip-checks")  # the test settings use http://testserver on purpose
    copies = [
        subprocess.Popen(command, cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    lines = [copy.communicate(timeout=120)[0].strip() for copy in copies]

    assert [copy.returncode for copy in copies] == [0, 0]
    counts = [int(line.split(",")[0].removeprefix("refreshed ")) for line in lines]
    assert sum(counts) == len(connections)
    assert len(refreshed_tokens(as_log)) == len(connections)
    assert len(set(refreshed_tokens(as_log))) == len(connections)


class ConcurrencyGauge:
    """A token endpoint that counts the requests it serves at once.

    Each request is held until one more than ``limit`` are in flight, or ``hold`` seconds
    passed: a pool that runs at most ``limit`` at a time shows exactly ``limit``; one that
    runs more shows more.
    """

    def __init__(self, limit: int, hold: float = 1.0) -> None:
        self.limit, self.hold = limit, hold
        self.in_flight = self.most = 0
        self.changed = threading.Condition()

    def __call__(self, request) -> Reply:
        with self.changed:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.changed.notify_all()
            self.changed.wait_for(lambda: self.in_flight > self.limit, timeout=self.hold)
            self.in_flight -= 1
        return Reply(body={"access_token": "new", "token_type": "Bearer", "expires_in": 3600})


@pytest.mark.postgres
def test_concurrency_is_bounded_and_real(scripted_connection, scripted_server):
    gauge = ConcurrencyGauge(limit=3)
    for i in range(7):
        scripted_connection(f"c{i}")
        scripted_server.default(f"/c{i}/token", gauge)
    before = database_sessions()

    assert run("--concurrency", "3").strip() == (
        "refreshed 7, failed 0, needs reauthorization 0, skipped 0"
    )
    assert gauge.most == 3
    # Each worker closed its own database connection at the end of its share (a server
    # process ends a moment after its client closed: give it up to two seconds).
    for _ in range(40):
        if database_sessions() == before:
            break
        time.sleep(0.05)
    assert database_sessions() == before


def database_sessions() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


def test_a_token_without_refresh_token_is_left_to_expire(connect, as_log):
    """Nothing can renew it ahead of time; it keeps being served until it expires."""
    connection = connect("no-refresh", expires_at=in_(minutes=5), refresh_token=None)
    assert run().strip() == "refreshed 0, failed 0, needs reauthorization 0, skipped 0"
    assert Token.objects.get(connection=connection).status == TokenStatus.ACTIVE
    assert as_log.to("/demo-oauth/token/") == []


def test_client_credentials_tokens_are_renewed_ahead(make_connection, as_log):
    make_connection("machine", grant_type=GrantType.CLIENT_CREDENTIALS)
    first = get_connection("machine").access_token
    Token.objects.filter(connection__slug="machine").update(expires_at=in_(minutes=5))
    assert "refreshed 1" in run()
    assert get_connection("machine").access_token != first
    assert [r.form["grant_type"] for r in as_log.to("/demo-oauth/token/")] == [
        ["client_credentials"]
    ] * 2


def test_a_connection_that_cannot_work_does_not_stop_the_run(scripted_connection, connect, as_log):
    scripted_connection("misconfigured")
    # An endpoint the URL policy refuses (as if edited in the database behind the admin's back)
    Provider.objects.filter(slug="misconfigured").update(token_endpoint="gopher://x/token")
    connect("fine", expires_at=in_(minutes=1))
    out = io.StringIO()
    with pytest.raises(CommandError):
        run(stdout=out)
    assert out.getvalue().strip() == "refreshed 1, failed 1, needs reauthorization 0, skipped 0"
    assert len(refreshed_tokens(as_log)) == 1


def test_a_cookie_one_grants_token_response_set_never_goes_out_with_anothers(
    scripted_connection, scripted_server
):
    # One run shares an HTTP client (and its kept-alive connections) across grants: a
    # cookie must not carry one grant's session into the next grant's token request.
    good = {"access_token": "a2", "token_type": "Bearer", "expires_in": 3600}
    for slug in ("first", "second", "third"):
        cookie = {"Set-Cookie": f"session={slug}; Path=/"}
        scripted_connection(slug, Reply(headers=cookie, body=good))

    assert refresh_due(Policy.from_settings(), concurrency=1).refreshed == 3

    sent = [scripted_server.requests_to(f"/{s}/token") for s in ("first", "second", "third")]
    assert [len(requests) for requests in sent] == [1, 1, 1]
    assert [requests[0].headers.get("Cookie") for requests in sent] == [None, None, None]

"""How many statements a proactive refresh costs the database (issue 11).

Counted with ``connection.execute_wrapper`` over a batch: every statement Django sends,
savepoints included, plus two (BEGIN and COMMIT, which the driver sends on its own) for each
transaction a statement ran in; a statement in autocommit is one round trip.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from oauthconn import signals
from oauthconn.flows.proactive import Policy, refresh_due
from oauthconn.flows.rows import hand_written_cursor
from oauthconn.flows.tokens import renew_now
from oauthconn.models import Connection, Provider, Token
from tests.scripted_server import Reply
from tests.test_concurrency import ROOT, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)

BATCH = 6


def make_due(scripted_server, slug: str, *, answer: bool = True, refresh_token: str = "r") -> None:
    """A connection ``slug`` whose token is due, its endpoint on ``scripted_server``; with
    ``answer``, one rotating answer is scripted."""
    endpoint = scripted_server.url(f"/{slug}/token")
    provider = Provider.objects.create(slug=slug, name=slug, token_endpoint=endpoint)
    connection_ = Connection.objects.create(
        slug=slug, name=slug, provider=provider, client_id="c", client_secret="s"
    )
    Token.objects.create(
        connection=connection_,
        access_token="a",
        refresh_token=refresh_token,
        expires_at=timezone.now() + timedelta(minutes=2),
    )
    if not answer:
        return
    body = {"access_token": "a2", "refresh_token": f"{slug}-r2", "expires_in": 3600}
    scripted_server.add(f"/{slug}/token", Reply(body={**body, "token_type": "Bearer"}))


@pytest.mark.postgres
def test_a_refresh_costs_at_most_three_round_trips(scripted_server):
    for i in range(BATCH):
        make_due(scripted_server, f"c{i}")
    statements: list[str] = []
    transactions: list[bool] = []  # one entry per committed transaction
    open_ = []

    def count(execute, sql, params, many, context):
        if connection.in_atomic_block and not open_:
            open_.append(True)  # the first statement of a transaction: count it at commit

            def committed() -> None:
                transactions.append(True)
                open_.clear()

            transaction.on_commit(committed)
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        summary = refresh_due(Policy.from_settings(), concurrency=1)

    assert summary.refreshed == BATCH
    # The one candidates query serves the whole batch.
    round_trips = len(statements) - 1 + 2 * len(transactions)
    assert round_trips / BATCH <= 3, "\n".join(statements)
    # In fact: one claim (and read) of the chunk, one UPDATE per token, one INSERT of the
    # chunk's events (one statement, no transaction around it); the lease covers every
    # renewal of a fast provider without being extended.
    assert round_trips == 1 + BATCH + 1, "\n".join(statements)
    assert not transactions
    # The rotated refresh tokens are stored.
    stored = sorted(t.refresh_token.reveal() for t in Token.objects.all())
    assert stored == sorted(f"c{i}-r2" for i in range(BATCH))


# --- a worker killed mid-batch (PostgreSQL) -------------------------------------------------


class FirstStalls:
    """A rotating token endpoint whose first answer never arrives: the worker is killed
    while waiting for it (the provider may or may not have rotated meanwhile)."""

    def __init__(self) -> None:
        self.arrived, self.release = threading.Event(), threading.Event()
        self.sent: list[str] = []

    def __call__(self, request) -> Reply:
        self.sent.append(request.form()["refresh_token"][0])
        if len(self.sent) == 1:
            self.arrived.set()
            self.release.wait(60)
        n = len(self.sent) + 1
        body = {"access_token": f"a{n}", "refresh_token": f"r{n}", "expires_in": 3600}
        return Reply(body={**body, "token_type": "Bearer"})


def killed_while_waiting(endpoint: FirstStalls | ThirdStalls, *options: str) -> None:
    """Run the command as its own process and SIGKILL it while ``endpoint`` holds the
    request that stalls."""
    command = [sys.executable, "-m", "django", "oauthconn_refresh", "--skip-checks", *options]
    copy = subprocess.Popen(command, cwd=ROOT, env=subprocess_env(), stdout=subprocess.PIPE)
    try:
        assert endpoint.arrived.wait(60), "the worker never sent the request that stalls"
        copy.send_signal(signal.SIGKILL)
        copy.wait(timeout=30)
    finally:
        endpoint.release.set()


@pytest.mark.postgres
def test_a_worker_killed_mid_batch_loses_no_token(scripted_server):
    endpoint = FirstStalls()
    make_due(scripted_server, "stuck", answer=False)
    scripted_server.default("/stuck/token", endpoint)
    Token.objects.update(refresh_token="r1")
    killed_while_waiting(endpoint)
    token = Token.objects.get()
    assert token.lease_until > timezone.now()  # claimed by the dead worker, nothing stored
    assert token.refresh_token.reveal() == "r1"

    # While its lease runs, neither the next run nor a person's "Refresh now" renews it.
    assert refresh_due(Policy.from_settings()).skipped == 1
    assert renew_now(token.connection).busy
    assert endpoint.sent == ["r1"]

    Token.objects.update(lease_until=timezone.now() - timedelta(seconds=1))  # it runs out
    assert refresh_due(Policy.from_settings()).refreshed == 1
    token = Token.objects.get()
    assert endpoint.sent == ["r1", "r1"]
    assert token.refresh_token.reveal() == "r3" and token.access_token.reveal() == "a3"
    assert token.lease_until is None


class ThirdStalls:
    """Rotating token endpoints (one path per grant) whose third request of the run never
    gets its answer: the worker is killed while waiting for it."""

    def __init__(self) -> None:
        self.arrived, self.release = threading.Event(), threading.Event()
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, request) -> Reply:
        old = request.form()["refresh_token"][0]
        with self.lock:
            self.sent.append(old)
            third = len(self.sent) == 3
        if third:
            self.arrived.set()
            self.release.wait(60)
        body = {"access_token": f"{old}-a", "refresh_token": f"{old}-2", "expires_in": 3600}
        return Reply(body={**body, "token_type": "Bearer"})


@pytest.mark.postgres
def test_a_worker_killed_mid_chunk_keeps_what_it_stored_and_frees_the_rest(scripted_server):
    endpoint = ThirdStalls()
    slugs = [f"k{i}" for i in range(5)]
    for slug in slugs:
        make_due(scripted_server, slug, answer=False)
        Token.objects.filter(connection__slug=slug).update(refresh_token=slug)
        scripted_server.default(f"/{slug}/token", endpoint)
    killed_while_waiting(endpoint, "--concurrency", "1")
    first, second, stalled = endpoint.sent
    tokens = {t.connection.slug: t for t in Token.objects.select_related("connection")}

    # The two renewals it finished are stored with their rotated refresh tokens, leases ended.
    for slug in (first, second):
        assert tokens[slug].refresh_token.reveal() == f"{slug}-2"
        assert tokens[slug].lease_until is None
    # The rest of its chunk stays leased (one renewal's deadline, not the chunk's), untouched.
    rest = [slug for slug in slugs if slug not in (first, second)]
    for slug in rest:
        assert tokens[slug].refresh_token.reveal() == slug
        assert timezone.now() < tokens[slug].lease_until
    assert max(t.lease_until for t in tokens.values() if t.lease_until) < timezone.now() + (
        timedelta(seconds=45)
    )
    assert refresh_due(Policy.from_settings()).skipped == 3

    Token.objects.update(lease_until=None)  # the lease runs out
    assert refresh_due(Policy.from_settings()).refreshed == 3
    stored = {t.connection.slug: t.refresh_token.reveal() for t in Token.objects.all()}
    # The stalled request may or may not have rotated at the provider; here it answered
    # afterwards, so its token was sent once more (an endpoint that rotated it would answer
    # invalid_grant, and the grant would need reauthorization: the one loss a kill allows).
    assert stored == {slug: f"{slug}-2" for slug in slugs}
    assert sorted(endpoint.sent) == sorted([*slugs, stalled])


class Slow:
    """A rotating token endpoint that takes a moment, so that two copies overlap."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def __call__(self, request) -> Reply:
        self.sent.append(request.form()["refresh_token"][0])
        time.sleep(0.1)
        body = {"access_token": "a2", "refresh_token": f"{self.sent[-1]}-2", "expires_in": 3600}
        return Reply(body={**body, "token_type": "Bearer"})


@pytest.mark.postgres
def test_two_copies_at_once_refresh_each_token_once(scripted_server):
    endpoints = {}
    for i in range(20):
        make_due(scripted_server, f"t{i}", answer=False)
        Token.objects.filter(connection__slug=f"t{i}").update(refresh_token=f"t{i}")
        endpoints[f"t{i}"] = Slow()
        scripted_server.default(f"/t{i}/token", endpoints[f"t{i}"])
    command = [sys.executable, "-m", "django", "oauthconn_refresh", "--concurrency", "3"]
    command.append("--skip-checks")
    env = subprocess_env()
    copies = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    lines = [copy.communicate(timeout=120)[0].strip() for copy in copies]

    assert [copy.returncode for copy in copies] == [0, 0], lines
    assert sum(int(line.split(",")[0].removeprefix("refreshed ")) for line in lines) == 20
    assert {slug: e.sent for slug, e in endpoints.items()} == {s: [s] for s in endpoints}
    stored = {t.connection.slug: t.refresh_token.reveal() for t in Token.objects.all()}
    assert stored == {slug: f"{slug}-2" for slug in endpoints}
    assert not Token.objects.filter(lease_until__isnull=False).exists()


# --- the lease: one renewal long, extended for the rows left (PostgreSQL) -------------------


@pytest.mark.postgres
def test_a_chunks_lease_lasts_one_renewal_not_the_whole_chunk(scripted_server, settings):
    from oauthconn.flows.common import LEASE_MARGIN
    from oauthconn.flows.proactive_batch import claim

    settings.OAUTHCONN = {**settings.OAUTHCONN, "REQUEST_DEADLINE": 30}
    for i in range(20):
        make_due(scripted_server, f"l{i}", answer=False)
    rows = [(pk, 30.0) for pk in Token.objects.values_list("pk", flat=True)]
    before = timezone.now()
    lease, tokens = claim(rows)

    assert len(tokens) == 20
    # Twenty renewals one after the other would be 600 s: a killed worker's rows would
    # wait that long. The lease covers the longest single renewal instead.
    assert lease.until <= before + timedelta(seconds=30 + LEASE_MARGIN + 1)
    assert set(Token.objects.values_list("lease_until", flat=True)) == {lease.until}


@pytest.mark.postgres
def test_the_lease_is_extended_for_the_rows_left_and_a_row_taken_meanwhile_is_dropped(
    scripted_server,
):
    from oauthconn.flows.proactive_batch import _release, claim

    for i in range(4):
        make_due(scripted_server, f"x{i}", answer=False)
    pks = sorted(Token.objects.values_list("pk", flat=True))
    lease, _ = claim([(pk, 5.0) for pk in pks])
    # Time passes (a slow provider): the lease is about to end when the third row's turn
    # comes, and another worker has meanwhile taken the fourth.
    soon = timezone.now() + timedelta(seconds=1)
    Token.objects.filter(pk__in=pks).update(lease_until=soon)
    lease.until, lease.ends = soon, [soon]
    taken = timezone.now() + timedelta(minutes=5)
    Token.objects.filter(pk=pks[3]).update(lease_until=taken)

    assert lease.holds(pks[2], 5.0, pks[2:]) is True
    assert lease.until > soon + timedelta(seconds=5)
    leases = dict(Token.objects.values_list("pk", "lease_until"))
    assert leases[pks[2]] == lease.until
    assert leases[pks[3]] == taken  # the other worker's lease is left alone
    assert leases[pks[0]] == leases[pks[1]] == soon  # done rows are not extended
    assert lease.holds(pks[3], 5.0, pks[3:]) is False
    # At the end, the rows not stored are released whichever end their lease has, and the
    # row another worker holds is left alone.
    _release(pks, lease.ends)
    leases = dict(Token.objects.values_list("pk", "lease_until"))
    assert [leases[pk] for pk in pks] == [None, None, None, taken]
    # No extension when the lease still covers the next renewal: no statement at all.
    with CaptureQueriesContext(connection) as queries:
        assert lease.holds(pks[2], 1.0, pks[2:]) is True
    assert len(queries) == 0


@pytest.mark.postgres
def test_a_chunk_keeps_one_cursor_and_opens_another_when_the_connection_was_replaced(
    scripted_server,
):
    from oauthconn.flows.proactive_batch import claim

    make_due(scripted_server, "kept", answer=False)
    lease, _ = claim([(Token.objects.get().pk, 5.0)])
    first = lease.cursor()
    assert lease.cursor() is first
    connection.close()  # Django reconnects on the next statement; the chunk's cursor must too
    again = lease.cursor()
    again.execute("SELECT 1")
    assert again is not first and again.fetchone() == (1,)
    lease.close()
    assert lease.cursor() is not again


@pytest.mark.postgres
def test_one_chunk_renews_the_grants_of_several_users_of_one_connection(scripted_server):
    from django.contrib.auth import get_user_model

    from oauthconn.models import Event

    endpoint = scripted_server.url("/team/token")
    provider = Provider.objects.create(slug="team", name="team", token_endpoint=endpoint)
    shared = Connection.objects.create(
        slug="team",
        name="team",
        provider=provider,
        client_id="c",
        client_secret="s",
        per_user=True,
    )
    users = [get_user_model().objects.create_user(f"u{i}") for i in range(3)]
    for user in users:
        Token.objects.create(
            connection=shared,
            owner=user,
            access_token="a",
            refresh_token=f"r-{user.username}",
            expires_at=timezone.now() + timedelta(minutes=2),
        )
    sent: list[str] = []

    def rotate(request) -> Reply:
        old = request.form()["refresh_token"][0]
        sent.append(old)
        body = {"access_token": "a2", "refresh_token": f"{old}-2", "expires_in": 3600}
        return Reply(body={**body, "token_type": "Bearer"})

    scripted_server.default("/team/token", rotate)

    assert refresh_due(Policy.from_settings(), concurrency=1).refreshed == 3

    assert sorted(sent) == ["r-u0", "r-u1", "r-u2"]
    stored = {t.owner.username: t.refresh_token.reveal() for t in Token.objects.all()}
    assert stored == {"u0": "r-u0-2", "u1": "r-u1-2", "u2": "r-u2-2"}
    owners = sorted(
        Event.objects.filter(kind="refreshed").values_list("owner__username", flat=True)
    )
    assert owners == ["u0", "u1", "u2"]


@pytest.mark.postgres
@pytest.mark.psycopg3
def test_the_hand_written_statements_send_their_parameters_apart_from_the_sql():
    """Server-side binding (flows/rows.hand_written_cursor): Django's default cursor
    interpolates each parameter into the SQL in Python; the renewal's UPDATE has twenty.
    Still one unnamed statement, not prepared, and still seen by execute wrappers."""
    import psycopg

    seen: list[str] = []

    def record(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record), hand_written_cursor(connection) as cursor:
        assert not isinstance(cursor.cursor, psycopg.ClientCursor)
        cursor.execute("SELECT %s::text, %s::int", ["it's", 7])
        assert cursor.fetchone() == ("it's", 7)
        # psycopg's record of the statement it sent: placeholders, not the values
        assert cursor.cursor._query.query == b"SELECT $1::text, $2::int"
    assert seen == ["SELECT %s::text, %s::int"]
    if connection.settings_dict["OPTIONS"].get("prepare_threshold") is None:
        # Unless the site turns psycopg's prepared statements on, nothing is prepared (a
        # transaction-pooling PgBouncer would lose it), however often it runs.
        for _ in range(10):
            with hand_written_cursor(connection) as cursor:
                cursor.execute("SELECT %s::int", [1])
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            assert cursor.fetchone() == (0,)


@pytest.mark.postgres
def test_a_receiver_raising_while_the_events_are_written_still_frees_the_unstored_rows(
    scripted_server,
):
    """The chunk's leases end even when writing its events fails: a row not renewed must
    not stay leased (for a whole lease) because a ``refreshed`` receiver raised."""
    make_due(scripted_server, "c0")
    make_due(scripted_server, "c1", answer=False)
    # c1 fails before any request (the URL policy refuses its endpoint): not stored.
    Provider.objects.filter(slug="c1").update(token_endpoint="http://10.0.0.1/token")

    def explode(**kwargs):
        raise RuntimeError("receiver failed")

    signals.refreshed.connect(explode)
    try:
        with pytest.raises(RuntimeError, match="receiver failed"):
            refresh_due(Policy.from_settings(), concurrency=1)
    finally:
        signals.refreshed.disconnect(explode)
    leases = dict(Token.objects.values_list("connection__slug", "lease_until"))
    assert leases == {"c0": None, "c1": None}
    assert Token.objects.get(connection__slug="c0").refresh_token.reveal() == "c0-r2"

"""``oauthconn_refresh --processes N``: one run spread over forked worker processes (issue 11).

The token endpoints are real HTTP servers (tests/scripted_server.py) that rotate refresh
tokens and record what they were sent. Which processes did the work is seen through the
``refreshed`` signal: a receiver runs in the process that renewed the token, a child's too,
and appends that process's id to a file.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection as db_connection
from django.db import connections
from django.utils import timezone

from oauthconn import signals
from oauthconn.flows import proactive_batch
from oauthconn.flows.proactive import Policy, refresh_due
from oauthconn.models import Token
from tests.scripted_server import Reply
from tests.test_proactive import Terminal
from tests.test_proactive_round_trips import make_due

pytestmark = pytest.mark.django_db(transaction=True)


class Rotating:
    """A token endpoint that rotates each refresh token (``r`` becomes ``r-2``); the first
    ``stalls`` requests wait for ``release`` (``arrived`` is set once they all have)."""

    def __init__(self, stalls: int = 0) -> None:
        self.stalls = stalls
        self.sent: list[str] = []
        self.lock = threading.Lock()
        self.arrived, self.release = threading.Event(), threading.Event()

    def __call__(self, request) -> Reply:
        old = request.form()["refresh_token"][0]
        with self.lock:
            self.sent.append(old)
            stall = len(self.sent) <= self.stalls
            if len(self.sent) == self.stalls:
                self.arrived.set()
        if stall:
            self.release.wait(60)
        body = {"access_token": f"{old}-a", "refresh_token": f"{old}-2", "expires_in": 3600}
        return Reply(body={**body, "token_type": "Bearer"})


@pytest.fixture
def due(scripted_server) -> Callable[[int, Rotating], list[str]]:
    """``count`` connections with a due token each, all answered by ``endpoint``; each
    token's refresh token is its connection's slug."""

    def make(count: int, endpoint: Rotating) -> list[str]:
        slugs = [f"p{i}" for i in range(count)]
        for slug in slugs:
            make_due(scripted_server, slug, answer=False, refresh_token=slug)
            scripted_server.default(f"/{slug}/token", endpoint)
        return slugs

    return make


@pytest.fixture
def refreshing_pids(tmp_path: Path) -> Iterator[Callable[[], Counter[int]]]:
    """The process ids the ``refreshed`` signal was sent in, with how many renewals each."""
    path = tmp_path / "pids"
    path.touch()

    def note(sender, **kwargs) -> None:
        with path.open("a") as file:  # one short append: whole lines, whoever writes
            file.write(f"{os.getpid()}\n")

    signals.refreshed.connect(note, weak=False)
    yield lambda: Counter(int(line) for line in path.read_text().split())
    signals.refreshed.disconnect(note)


def stored() -> dict[str, str]:
    return {t.connection.slug: t.refresh_token.reveal() for t in Token.objects.all()}


def test_rejects_zero_processes():
    with pytest.raises(CommandError, match="--processes must be at least 1"):
        call_command("oauthconn_refresh", "--processes", "0", stdout=io.StringIO())


def test_sqlite_runs_in_one_process_whatever_processes_says(due, refreshing_pids):
    if db_connection.vendor != "sqlite":
        pytest.skip("SQLite only: elsewhere --processes forks")
    endpoint = Rotating()
    slugs = due(4, endpoint)

    out = io.StringIO()
    call_command("oauthconn_refresh", "--processes", "2", stdout=out)

    assert out.getvalue().strip() == "refreshed 4, failed 0, needs reauthorization 0, skipped 0"
    assert refreshing_pids() == {os.getpid(): 4}
    assert sorted(endpoint.sent) == slugs


@pytest.mark.postgres
def test_two_processes_refresh_every_due_token_once(due, refreshing_pids):
    endpoint = Rotating()
    slugs = due(40, endpoint)
    out = Terminal()

    call_command("oauthconn_refresh", "--processes", "2", "--concurrency", "4", stdout=out)

    summary = "refreshed 40, failed 0, needs reauthorization 0, skipped 0"
    assert out.getvalue().rstrip().endswith(summary)
    # The bar moved as the children's chunks finished, up to the total.
    assert out.getvalue().count("\r[") == 40
    assert "\r[" + "#" * 30 + "] 40/40" in out.getvalue()
    # Every due token was sent once, and its rotated refresh token is the one stored.
    assert len(endpoint.sent) == len(set(endpoint.sent)) == len(slugs)
    assert stored() == {slug: f"{slug}-2" for slug in slugs}
    assert not Token.objects.filter(lease_until__isnull=False).exists()
    # By two children, not by the parent.
    pids = refreshing_pids()
    assert len(pids) == 2 and os.getpid() not in pids and pids.total() == 40


@pytest.mark.postgres
def test_a_killed_worker_process_ends_the_run_with_a_readable_error_and_loses_nothing(
    due, settings, monkeypatch
):
    # A lease of 5 + 1 s (one request's deadline plus the margin), to wait for it to end.
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REQUEST_DEADLINE": 5}
    monkeypatch.setattr(proactive_batch, "LEASE_MARGIN", 1.0)
    # Two processes of one thread each, one chunk of four tokens each: each child's first
    # request stalls until one child has been killed.
    endpoint = Rotating(stalls=2)
    slugs = due(8, endpoint)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            options = ("--processes", "2", "--concurrency", "2")
            call_command("oauthconn_refresh", *options, stdout=io.StringIO())
        except BaseException as err:
            failure.append(err)
        finally:
            connections.close_all()

    runner = threading.Thread(target=run)
    runner.start()
    try:
        assert endpoint.arrived.wait(30), "the children never sent their first requests"
        children = multiprocessing.active_children()
        victim = next(c for c in children if c.name.startswith("oauthconn-refresh"))
        os.kill(victim.pid, signal.SIGKILL)
    finally:
        endpoint.release.set()
    runner.join(timeout=60)

    assert not runner.is_alive(), "the parent hangs on its dead child"
    [error] = failure
    assert isinstance(error, CommandError)
    message = str(error)
    assert message.startswith("1 of the 2 refresh worker processes ended early")
    assert f"process {victim.pid} was killed by SIGKILL with 4 of its 4 tokens not done" in (
        message
    )
    assert "Nothing was lost" in message and "free again when their lease ends" in message

    # The other child finished its share; the dead one's chunk stays leased, untouched.
    tokens = {t.connection.slug: t for t in Token.objects.select_related("connection")}
    done = [slug for slug in slugs if tokens[slug].refresh_token.reveal() == f"{slug}-2"]
    left = [slug for slug in slugs if slug not in done]
    assert len(done) == len(left) == 4
    assert all(tokens[slug].refresh_token.reveal() == slug for slug in left)
    assert all(tokens[slug].lease_until > timezone.now() for slug in left)
    assert refresh_due(Policy.from_settings()).skipped == 4

    # Once the lease has run out (waited for, not rewritten), a later run refreshes them.
    end = max(tokens[slug].lease_until for slug in left)
    time.sleep(max(0.0, (end - timezone.now()).total_seconds()) + 0.2)
    assert refresh_due(Policy.from_settings(), processes=2).refreshed == 4
    assert stored() == {slug: f"{slug}-2" for slug in slugs}
    assert not Token.objects.filter(lease_until__isnull=False).exists()
    # Each token was sent once, but the one the dead child had in flight: it was sent again
    # after the lease (had the provider rotated it, that grant would need reauthorization:
    # the one loss a kill allows, as with one process).
    [in_flight] = [slug for slug in endpoint.sent[:2] if slug in left]
    assert sorted(endpoint.sent) == sorted([*slugs, in_flight])


@pytest.mark.postgres
def test_an_error_in_a_worker_process_is_raised_in_the_parent_after_the_others_finish(
    due, settings, refreshing_pids
):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "PROACTIVE_PROCESSES": 2}  # the default
    endpoint = Rotating()
    slugs = due(8, endpoint)

    def broken(sender, token, **kwargs) -> None:
        if token.connection.slug == "p0":
            raise RuntimeError("a receiver of refreshed failed")

    signals.refreshed.connect(broken, weak=False)
    try:
        with pytest.raises(RuntimeError, match="a receiver of refreshed failed") as caught:
            refresh_due(Policy.from_settings(), concurrency=2)
    finally:
        signals.refreshed.disconnect(broken)

    [note] = caught.value.__notes__
    child = int(note.split(":")[0].removeprefix("Raised in refresh worker process "))
    assert child != os.getpid() and "Traceback" in note and "broken" in note
    # Both shares ran to the end: every token renewed once, by the two children.
    assert sorted(endpoint.sent) == slugs
    assert stored() == {slug: f"{slug}-2" for slug in slugs}
    pids = refreshing_pids()
    assert len(pids) == 2 and child in pids and os.getpid() not in pids


@pytest.mark.postgres
def test_the_celery_task_runs_in_one_process(due, settings, refreshing_pids):
    from oauthconn.tasks import run_refresh

    settings.OAUTHCONN = {**settings.OAUTHCONN, "PROACTIVE_PROCESSES": 2}
    due(8, Rotating())

    assert run_refresh(concurrency=2)["refreshed"] == 8
    assert refreshing_pids() == {os.getpid(): 8}

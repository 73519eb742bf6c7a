"""Proactive refresh: renew tokens before anyone needs them, shared by the command and the task.

A token is due when its access token expires within ``window`` seconds, when its refresh
token has not been used for ``idle_days`` (Microsoft, Google, Xero and others expire idle
refresh tokens), or when the provider announced a refresh token expiry within
``refresh_window`` seconds. Several copies may run at once on several hosts: a row another
copy holds is skipped, never waited on, and the due-check is repeated once the row is taken
(PostgreSQL: a chunk of rows leased at once, see flows/proactive_batch.py; SQLite: a lease per
row; MySQL: ``SELECT … FOR UPDATE SKIP LOCKED`` per row).
"""

from __future__ import annotations

import logging
import math
import queue
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar, cast

from django.db import OperationalError, connections
from django.db import connection as db_connection
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import OAuthConnError
from oauthconn.flows.common import lease_for, reusing_outbound_client
from oauthconn.flows.outcomes import Outcome as RenewalOutcome
from oauthconn.flows.outcomes import renewing_as
from oauthconn.flows.proactive_batch import CHUNK, Row, refresh_chunk
from oauthconn.flows.proactive_processes import forkable, in_processes
from oauthconn.flows.tokens import exclusively, renew_locked_token
from oauthconn.models import GrantType, Token, TokenStatus

logger = logging.getLogger("oauthconn")

REFRESHED, FAILED, NEEDS_REAUTH, SKIPPED = "refreshed", "failed", "needs_reauth", "skipped"

# A provider that does not rotate refresh tokens keeps announcing the same expiry: without
# this pause every run would refresh such a token again.
MIN_INTERVAL = timedelta(hours=1)


@dataclass(frozen=True)
class Policy:
    """When a token is due for a proactive refresh (see the module docstring)."""

    window: float
    idle_days: float
    refresh_window: float
    now: datetime = field(default_factory=timezone.now)

    @classmethod
    def from_settings(cls, **overrides: float | None) -> Policy:
        values = {
            "window": oauthconn_settings.PROACTIVE_WINDOW,
            "idle_days": oauthconn_settings.IDLE_REFRESH_DAYS,
            "refresh_window": oauthconn_settings.REFRESH_TOKEN_WINDOW,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def candidates(self) -> QuerySet[Token]:
        """A pre-filter in SQL; :meth:`is_due` decides, under the row lock."""
        usable = Q(status__in=[TokenStatus.ACTIVE, TokenStatus.FAILING]) & (
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=self.now)
        )
        expiring = Q(expires_at__lte=self.now + timedelta(seconds=self.window))
        refreshable = Q(refresh_token__isnull=False)
        ending = Q(refresh_expires_at__lte=self.now + timedelta(seconds=self.refresh_window))
        due = expiring | (refreshable & ending)
        if self.idle_days:
            idle_since = self.now - timedelta(days=self.idle_days)
            # COALESCE (last refreshed, else authorized) rather than an OR of the two: the
            # expression is what the oauthconn_token_last_used index holds.
            unused = Q(last_used__lte=idle_since)
            due |= refreshable & unused
        # Without a refresh token there is nothing to renew ahead of time; marking it
        # "needs reauthorization" early would stop serving a still-valid access token.
        renewable = refreshable | Q(connection__grant_type=GrantType.CLIENT_CREDENTIALS)
        connected = Q(access_token__isnull=False)
        tokens = Token.objects.alias(last_used=Coalesce("refreshed_at", "authorized_at"))
        return tokens.filter(usable & connected & renewable & due).order_by("expires_at", "pk")

    def is_due(self, token: Token) -> bool:
        if token.status not in (TokenStatus.ACTIVE, TokenStatus.FAILING):
            return False
        if token.next_attempt_at is not None and token.next_attempt_at > self.now:
            return False
        client_credentials = token.connection.grant_type == GrantType.CLIENT_CREDENTIALS
        if token.access_token is None or (token.refresh_token is None and not client_credentials):
            return False
        if token.needs_refresh(self.window, now=self.now):
            return True
        return token.refresh_token is not None and (self._idle(token) or self._ending(token))

    def _idle(self, token: Token) -> bool:
        last_used = token.refreshed_at or token.authorized_at
        if not self.idle_days or last_used is None:
            return False
        return last_used <= self.now - timedelta(days=self.idle_days)

    def _ending(self, token: Token) -> bool:
        if token.refresh_expires_at is None:
            return False
        recently = token.refreshed_at and token.refreshed_at > self.now - MIN_INTERVAL
        limit = self.now + timedelta(seconds=self.refresh_window)
        return token.refresh_expires_at <= limit and not recently


@dataclass
class Summary:
    """What one run did; ``line()`` is the one-line report."""

    refreshed: int = 0
    failed: int = 0
    needs_reauth: int = 0
    skipped: int = 0

    def add(self, result: str) -> None:
        setattr(self, result, getattr(self, result) + 1)

    @property
    def ok(self) -> bool:
        return not (self.failed or self.needs_reauth)

    def line(self) -> str:
        return (
            f"refreshed {self.refreshed}, failed {self.failed}, "
            f"needs reauthorization {self.needs_reauth}, skipped {self.skipped}"
        )

    def as_dict(self) -> dict[str, int]:
        return {
            REFRESHED: self.refreshed,
            FAILED: self.failed,
            NEEDS_REAUTH: self.needs_reauth,
            SKIPPED: self.skipped,
        }


def refresh_due(
    policy: Policy | None = None,
    *,
    concurrency: int | None = None,
    processes: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    source: str = "oauthconn_refresh",
) -> Summary:
    """Refresh every due token, at most ``concurrency`` at a time; report as they finish.

    ``on_progress(done, total)`` is called as tokens finish. ``source`` names the job in the
    events it records (the connection page shows "by oauthconn_refresh"). PostgreSQL renews a
    chunk of tokens per claim (flows/proactive_batch.py); elsewhere one row at a time, and
    SQLite, which serializes writes, in the calling thread.

    ``processes`` (default ``PROACTIVE_PROCESSES``) forks that many workers, each running
    ``ceil(concurrency / processes)`` threads, so ``concurrency`` stays the total in flight,
    rounded up to a multiple of ``processes`` (flows/proactive_processes.py): for a run whose
    own CPU is the bound, against a provider that answers at once. There are never more
    processes than ``concurrency`` or than chunks to run, and one on SQLite (and inside a
    transaction, with a connection pool, or where "fork" is missing).
    """
    policy = policy or Policy.from_settings()
    rows = [
        (pk, lease_for(subject, jwks_uri))
        for pk, subject, jwks_uri in policy.candidates().values_list(
            "pk", "subject", "connection__provider__jwks_uri"
        )
    ]
    workers = concurrency or oauthconn_settings.PROACTIVE_CONCURRENCY
    processes = processes or oauthconn_settings.PROACTIVE_PROCESSES
    if db_connection.vendor == "sqlite":
        workers = processes = 1
    summary = Summary()
    for done, result in enumerate(_run(policy, rows, workers, processes, source), start=1):
        summary.add(result)
        if on_progress is not None:
            on_progress(done, len(rows))
    return summary


def _run(
    policy: Policy, rows: list[Row], workers: int, processes: int, source: str
) -> Iterator[str]:
    work, chunks = _work(policy, rows, workers, source)
    processes = min(processes, workers, len(chunks))
    if processes > 1 and forkable():
        threads = math.ceil(workers / processes)
        return in_processes(partial(_each_chunk, work, threads), chunks, processes)
    return _map(work, chunks, workers)


def _work(
    policy: Policy, rows: list[Row], workers: int, source: str
) -> tuple[Work[str], list[list[Row]]]:
    """What renews a chunk, and the chunks: enough of them for every worker to have one."""
    if db_connection.vendor == "postgresql":
        size = max(1, min(CHUNK, math.ceil(len(rows) / workers)))
        chunks = [rows[i : i + size] for i in range(0, len(rows), size)]
        return partial(refresh_chunk, is_due=policy.is_due, result=result_of, source=source), chunks
    one = partial(refresh_if_due, is_due=policy.is_due, source=source)
    return (lambda chunk: [one(chunk[0][0])]), [[row] for row in rows]


def _each_chunk(work: Work[str], threads: int, share: list[list[Row]]) -> Iterator[list[str]]:
    """A worker process's share on ``threads`` threads: each chunk's results at once."""
    return _map(lambda chunk: [work(chunk)], share, threads)


T = TypeVar("T")
Outcome = tuple[list[T] | None, BaseException | None]
Work = Callable[[list[Row]], list[T]]


def _map(function: Work[T], chunks: list[list[Row]], workers: int) -> Iterator[T]:
    """Results in the order their chunks finish, so the progress bar moves with the work.

    A ``ThreadPoolExecutor`` of at most ``workers`` threads runs one share each: a share
    takes the next chunk until none is left, with one database connection and one HTTP
    client for all of them (opening both anew for every token cost more than the refresh
    itself), and closes its database connection when done. An error is raised here, in the
    caller's thread, once the shares have finished the rest.
    """
    if workers <= 1 or len(chunks) <= 1:
        with reusing_outbound_client():
            for chunk in chunks:
                yield from function(chunk)
        return
    todo: queue.SimpleQueue[list[Row]] = queue.SimpleQueue()
    for chunk in chunks:
        todo.put(chunk)
    finished: queue.SimpleQueue[Outcome[T]] = queue.SimpleQueue()
    shares = min(workers, len(chunks))
    with ThreadPoolExecutor(max_workers=shares, thread_name_prefix="oauthconn-refresh") as pool:
        for _ in range(shares):
            pool.submit(_share, function, todo, finished)
        for _ in chunks:
            results, error = finished.get()
            if error is not None:
                raise error
            yield from cast(list[T], results)  # set whenever error is None


def _share(
    function: Work[T], todo: queue.SimpleQueue[list[Row]], finished: queue.SimpleQueue
) -> None:
    """One worker's part of the run; every token's outcome goes to ``finished``."""
    try:
        with reusing_outbound_client():
            while True:
                try:
                    chunk = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    finished.put((function(chunk), None))
                except BaseException as err:  # raised in the caller's thread; go on here
                    finished.put((None, err))
    except BaseException as err:  # no HTTP client: the caller must not wait for results
        finished.put((None, err))
    finally:
        connections.close_all()  # this thread's own database connection


def refresh_if_due(pk: int, is_due: Callable[[Token], bool], source: str = "") -> str:
    """Renew one token row ahead of time unless another worker holds it or it is not due.

    Returns ``"refreshed"``, ``"failed"``, ``"needs_reauth"`` or ``"skipped"``. Rows another
    copy of the job holds are skipped, not waited on (PostgreSQL's SKIP LOCKED, SQLite's lease).
    """
    try:
        with exclusively(pk, wait=False) as token:
            if token is None or not is_due(token):
                return SKIPPED
            with renewing_as(source=source):
                outcome = renew_locked_token(token, force=True)
    except OperationalError:
        return SKIPPED  # SQLite busy: another writer had it for longer than its timeout
    except OAuthConnError as err:
        # A connection that cannot work (e.g. an endpoint the URL policy refuses) must not
        # stop the run for the others.
        logger.warning("oauthconn proactive refresh of token %s failed: %s", pk, err)
        return FAILED
    return result_of(outcome)


def result_of(outcome: RenewalOutcome) -> str:
    """A renewal's outcome as the run counts it."""
    if outcome.error is None and outcome.token.status == TokenStatus.ACTIVE:
        return REFRESHED
    return NEEDS_REAUTH if outcome.token.status == TokenStatus.NEEDS_REAUTH else FAILED

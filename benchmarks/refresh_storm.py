"""The lifecycle benchmark: N concurrent callers ask one expired connection for its token.

For each N, a fresh expired grant at the authorization server (refresh tokens rotate, no grace
period), stored as one oauthconn connection. N threads in this process, and on PostgreSQL
also P worker processes with T threads each, are released together and each call
``get_connection(slug).access_token``. Reported: the token requests the server saw (the point:
one), errors, and how long the callers waited (median and slowest, from the release until each
held a token). SQLite runs the threads only: its lease does not make other processes wait, it
tells them to retry (docs/lifecycle.md).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter

from django.db import connection as db

from benchmarks.common import (
    ROOT,
    Section,
    Table,
    child_env,
    issue_grants,
    make_connections,
    make_provider,
    register_client,
)
from oauthconn import get_connection

# A worker process: T threads wait for "go" on stdin, then each asks for the token and
# reports (milliseconds waited, error name or "").
WORKER = r"""
import json, sys, threading, time
import django
django.setup()
from django.db import connection
from oauthconn import get_connection

slug, count = sys.argv[1], int(sys.argv[2])
results, barrier = [], threading.Barrier(count + 1)

def ask():
    barrier.wait()
    start = time.perf_counter()
    try:
        get_connection(slug).access_token
        error = ""
    except Exception as err:
        error = type(err).__name__
    results.append(((time.perf_counter() - start) * 1000, error))
    connection.close()

threads = [threading.Thread(target=ask) for _ in range(count)]
for thread in threads:
    thread.start()
print("ready", flush=True)
sys.stdin.readline()
barrier.wait()
for thread in threads:
    thread.join()
print(json.dumps(results), flush=True)
"""


def ask_in_threads(slug: str, count: int) -> tuple[threading.Barrier, list, list]:
    """Start ``count`` threads that ask for the token once the returned barrier opens."""
    barrier = threading.Barrier(count + 1)
    results: list[tuple[float, str]] = []

    def ask() -> None:
        barrier.wait()
        start = time.perf_counter()
        try:
            get_connection(slug).access_token  # noqa: B018 - the call is the work
            error = ""
        except Exception as err:  # noqa: BLE001 - counted, not raised
            error = type(err).__name__
        results.append(((time.perf_counter() - start) * 1000, error))
        db.close()

    threads = [threading.Thread(target=ask) for _ in range(count)]
    for thread in threads:
        thread.start()
    return barrier, threads, results


def start_processes(slug: str, processes: int, threads: int) -> list[subprocess.Popen]:
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, slug, str(threads)],
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for worker in workers:
        if worker.stdout.readline().strip() != "ready":
            raise RuntimeError("a refresh storm worker process did not start")
    return workers


def storm(ctx, app, secret: str, label: str, threads: int, processes: int, per_process: int):
    """One storm on a fresh expired grant; the outcome as a dict of facts."""
    grant = issue_grants(app, 1, expired=True)
    (slug,) = make_connections(
        make_provider(ctx.auth), label, client_id=app.client_id, secret=secret, grants=grant
    )
    workers = start_processes(slug, processes, per_process)
    barrier, local, results = ask_in_threads(slug, threads)
    ctx.auth.reset()
    for worker in workers:
        worker.stdin.write("go\n")
        worker.stdin.flush()
    barrier.wait()
    for thread in local:
        thread.join()
    for worker in workers:
        out, _ = worker.communicate(timeout=300)
        results += [tuple(item) for item in json.loads(out.strip().splitlines()[-1])]
    waited = sorted(ms for ms, _ in results)
    return {
        "callers": len(results),
        "token_requests": ctx.auth.stats().get("total", 0),
        "errors": dict(Counter(error for _, error in results if error)),
        "median_wait_ms": round(statistics.median(waited), 1),
        "max_wait_ms": round(waited[-1], 1),
    }


def scenarios(smoke: bool, on_postgres: bool) -> list[tuple[int, int, int]]:
    """(threads here, worker processes, threads per process)."""
    if smoke:
        return [(4, 0, 0)] + ([(2, 2, 2)] if on_postgres else [])
    plan = [(2, 0, 0), (10, 0, 0), (50, 0, 0)]
    if on_postgres:
        plan += [(10, 2, 5), (50, 4, 5)]
    return plan


def run(ctx) -> Section:
    app, secret = register_client("refresh-storm")
    on_postgres = db.vendor == "postgresql"
    table = Table(
        "Concurrent callers of one expired connection (refresh tokens rotate)",
        [
            "threads here",
            "processes × threads",
            "callers",
            "token requests seen",
            "errors",
            "median wait (ms)",
            "slowest wait (ms)",
        ],
    )
    facts: dict = {}
    for i, (threads, processes, per_process) in enumerate(scenarios(ctx.smoke, on_postgres)):
        outcome = storm(ctx, app, secret, f"lifecycle-storm-{i}", threads, processes, per_process)
        key = f"N={outcome['callers']} ({threads} threads, {processes}x{per_process} processes)"
        facts[key] = outcome
        errors = ", ".join(f"{k}: {v}" for k, v in outcome["errors"].items()) or "0"
        table.rows.append(
            [
                threads,
                f"{processes} × {per_process}" if processes else "–",
                outcome["callers"],
                outcome["token_requests"],
                errors,
                outcome["median_wait_ms"],
                outcome["max_wait_ms"],
            ]
        )
    section = Section("refresh_storm", "Refresh storm: one expired connection, N callers")
    section.tables.append(table)
    section.facts = facts
    section.notes.append(
        "Wait: from the moment all callers are released until each holds a valid access token; "
        "it includes the one token request and, for the others, waiting for its result."
    )
    if not on_postgres:
        section.notes.append("SQLite: threads only; run with DATABASE_URL for processes.")
    return section

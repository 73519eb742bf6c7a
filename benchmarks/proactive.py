"""Item 4: proactive refresh at scale with the ``oauthconn_refresh`` management command.

K connections whose access tokens expire within the window are refreshed by the command, run
as a real process (as cron would start it), once alone, then as two copies at once on a
fresh set, and on PostgreSQL as one copy with ``--processes 2`` at twice the concurrency
(one run forking two workers). Its rates and CPU are the command's own account of its
refresh (``oauthconn_refresh -v 2``), without the start-up of Python and Django, which is
measured with nothing due and reported apart.

The limit is a fast local token endpoint (``token_server.py``: no database, a fresh token
per request, microseconds per answer) driven by a bare httpx client at the command's own
concurrency (``PROACTIVE_CONCURRENCY``; 1 on SQLite, where the command runs one token at a
time). Against it the command's figure is bounded by the command. The same two runs against
django-oauth-toolkit on Django's development server (~100 token requests/s here) are a
second, "realistic provider" pair: there both are bounded by the provider.
"""

from __future__ import annotations

import os
import re
import resource
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from django.db import connection as db

from benchmarks.common import (
    ROOT,
    AuthServer,
    FastTokenServer,
    Section,
    Table,
    child_env,
    issue_grants,
    make_connections,
    make_provider,
    register_client,
)
from oauthconn.conf import oauthconn_settings

WINDOW = 900
#: rounds against the fast endpoint (bare client and command interleaved): the table gives
#: the median round's figures and, beside each, the range over the rounds
ROUNDS = 5
CLIENT_ID = "proactive"
Grants = list[tuple[str, str]]


#: the two token endpoints refreshed against: both count requests and report their CPU
TokenEndpoint = AuthServer | FastTokenServer


def concurrency() -> int:
    """Refreshes in flight in the command: what ``refresh_due`` uses on this database."""
    return 1 if db.vendor == "sqlite" else oauthconn_settings.PROACTIVE_CONCURRENCY


def bare_rate(server: TokenEndpoint, secret: str, grants: Grants, workers: int) -> dict:
    """Refreshes per second ``server`` sustains for a bare client with ``workers`` threads."""
    chunks = [grants[i::workers] for i in range(workers)]
    failures: list[int] = []

    def work(chunk: Grants) -> None:
        with httpx.Client(auth=(CLIENT_ID, secret), timeout=60) as client:
            for _, refresh in chunk:
                data = {"grant_type": "refresh_token", "refresh_token": refresh}
                status = client.post(server.token_endpoint, data=data).status_code
                if status != 200:
                    failures.append(status)

    threads = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    server.reset()
    start, cpu, server_cpu = time.perf_counter(), time.process_time(), server.cpu_seconds()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    return {
        "per_second": round(len(grants) / seconds, 1),
        "seconds": round(seconds, 2),
        "failures": len(failures),
        "token_requests": server.stats().get("total", 0),
        "refreshed": len(grants) - len(failures),
        "client_cpu_ms": per_item(time.process_time() - cpu, len(grants)),
        "server_cpu_ms": per_item(server.cpu_seconds() - server_cpu, len(grants)),
    }


def per_item(seconds: float, count: int) -> float:
    return round(1000 * seconds / max(count, 1), 2)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


#: what ``oauthconn_refresh -v 2`` says its refresh took (oauthconn_refresh.report_effort)
EFFORT = re.compile(r"Due tokens: \d+, in ([\d.]+) s and ([\d.]+) s of CPU")


def command(copies: int, workers: int, processes: int = 1) -> dict:
    """Start ``copies`` of the command at once; what each reported, and what they took.

    ``refresh_seconds`` and ``refresh_cpu`` are the commands' own account of their refresh
    (``-v 2``: wall-clock from the query for due tokens to the last result, and the CPU of
    the process, its threads and its worker processes), without Python's and Django's
    start-up: the longest of the copies' times, and the sum of their CPU. ``seconds`` is
    the whole run, start-up included.
    """
    args = [sys.executable, "manage.py", "oauthconn_refresh", "--window", str(WINDOW)]
    args += ["--concurrency", str(workers), "--processes", str(processes), "--verbosity", "2"]
    start, cpu = time.perf_counter(), children_cpu()
    procs = [
        subprocess.Popen(args, cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, text=True)
        for _ in range(copies)
    ]
    outputs = [proc.communicate()[0] for proc in procs]
    seconds = time.perf_counter() - start
    refreshed = sum(
        int(m.group(1)) for m in map(re.compile(r"refreshed (\d+)").search, outputs) if m
    )
    efforts = [EFFORT.search(output) for output in outputs]
    return {
        "seconds": seconds,
        "cpu": children_cpu() - cpu,
        "refresh_seconds": max(float(e.group(1)) if e else seconds for e in efforts),
        "refresh_cpu": sum(float(e.group(2)) for e in efforts if e),
        "refreshed": refreshed,
        "exit_codes": [p.returncode for p in procs],
    }


class Target:
    """A token endpoint to refresh against, and how to get ``count`` grants it will accept."""

    def __init__(
        self, server: TokenEndpoint, provider_slug: str, issue: Callable[[int], Grants]
    ) -> None:
        self.server = server
        self.provider_slug = provider_slug
        self.issue = issue

    def seed(self, secret: str, count: int) -> None:
        """Exactly ``count`` connections due, their provider's token endpoint this server's."""
        from oauthconn.models import Connection

        Connection.objects.all().delete()  # only these tokens are due
        make_connections(
            make_provider(self.server, self.provider_slug),
            "pro",
            client_id=CLIENT_ID,
            secret=secret,
            grants=self.issue(count),
            expires_in=WINDOW / 3,
        )


def random_grants(count: int) -> Grants:
    """Grants for the fast server, which accepts any refresh token."""
    return [(secrets.token_urlsafe(30), secrets.token_urlsafe(30)) for _ in range(count)]


def command_rate(
    target: Target, secret: str, count: int, copies: int, startup: dict, processes: int = 1
) -> dict:
    """Run the command on ``count`` due tokens; rates and CPU of its refresh (``command``).

    With ``processes``, one copy at ``processes`` times the concurrency (the same threads
    per process as a copy of its own).
    """
    target.seed(secret, count)
    server = target.server
    server.reset()
    server_cpu = server.cpu_seconds()
    result = command(copies, startup["workers"] * processes, processes)
    seen = server.stats()
    result["token_requests"] = seen.get("total", 0)
    result["distinct_refresh_tokens"] = seen.get("distinct_refresh_tokens")
    result["server_cpu_ms"] = per_item(server.cpu_seconds() - server_cpu, count)
    result["client_cpu_ms"] = per_item(result.pop("refresh_cpu"), count)
    result["per_second"] = round(count / max(result.pop("refresh_seconds"), 1e-3), 1)
    result["seconds"] = round(result["seconds"], 2)
    del result["cpu"]
    return result


def run(ctx: Any) -> Section:
    count = 20 if ctx.smoke else 1000
    workers = concurrency()
    app, secret = register_client(CLIENT_ID)
    fast_server = FastTokenServer()
    try:
        fast = Target(fast_server, "bench-fast", random_grants)
        dot = Target(ctx.auth, "bench-as", lambda n: issue_grants(app, n, expired=False))
        fast.seed(secret, 0)
        startup = {**command(1, workers), "workers": workers}
        forks = db.vendor == "postgresql"  # where rows are claimed across processes
        rounds = [
            measure(fast, secret, count, workers, startup, copies=(1, 2), two_processes=forks)
            for _ in range(1 if ctx.smoke else ROUNDS)
        ]
        results = {
            "fast": median_round(rounds),
            "fast_rounds": rounds,
            "dot": measure(dot, secret, count, workers, startup, copies=(1,)),
        }
    finally:
        fast_server.stop()
    return report(count, workers, startup, results)


def median_round(rounds: list[dict]) -> dict:
    """Per row, its result in the round where its rate was the median (an odd number)."""
    out = {}
    for key in rounds[0]:
        ordered = sorted((r[key] for r in rounds), key=lambda result: result["per_second"])
        out[key] = {**ordered[len(ordered) // 2], "range": spread(ordered)}
    return out


def spread(results: list[dict]) -> dict[str, tuple[float, float]]:
    """The lowest and highest rate and client CPU over the rounds."""
    return {
        name: (min(r[name] for r in results), max(r[name] for r in results))
        for name in ("per_second", "client_cpu_ms")
    }


def measure(
    target: Target,
    secret: str,
    count: int,
    workers: int,
    startup: dict,
    copies: tuple[int, ...],
    two_processes: bool = False,
) -> dict:
    """The bare client and the command against one server, for 1 (and 2) copies at once,
    and with ``two_processes`` one copy with ``--processes 2`` (compared with ``limit_2``)."""
    bare_rate(target.server, secret, target.issue(10), workers)  # warm-up
    out: dict[str, dict] = {}
    for n in copies:
        out[f"limit_{n}"] = bare_rate(target.server, secret, target.issue(count), workers * n)
        out[f"command_{n}"] = command_rate(target, secret, count, n, startup)
    if two_processes:
        out["processes_2"] = command_rate(target, secret, count, 1, startup, processes=2)
    return out


def report(count: int, workers: int, startup: dict, results: dict) -> Section:
    table = Table(
        f"{count:,} tokens due, refreshed against a local token endpoint",
        ["token endpoint", "who", "concurrency", "refreshes/s", "% of the limit"]
        + ["token requests seen", "tokens refreshed", "seconds"]
        + ["server CPU ms/refresh", "client CPU ms/refresh"],
    )
    fast, dot = results["fast"], results["dot"]
    fast_name, dot_name = "fast local endpoint", "DOT, Django dev server"
    # (endpoint, its results, who, concurrency, the row's key in them, the limit's key)
    rows: list[tuple[str, dict, str, int | str, str, str]] = [
        (fast_name, fast, "bare httpx client (the limit)", workers, "limit_1", "limit_1"),
        (fast_name, fast, "oauthconn_refresh", workers, "command_1", "limit_1"),
        (fast_name, fast, "bare httpx client (the limit)", workers * 2, "limit_2", "limit_2"),
        (
            fast_name,
            fast,
            "oauthconn_refresh, two copies",
            f"{workers} each",
            "command_2",
            "limit_2",
        ),
    ]
    if "processes_2" in fast:
        in_flight = f"{workers * 2} ({workers} per process)"
        who = "oauthconn_refresh --processes 2"
        rows.append((fast_name, fast, who, in_flight, "processes_2", "limit_2"))
    rows += [
        (dot_name, dot, "bare httpx client", workers, "limit_1", "limit_1"),
        (dot_name, dot, "oauthconn_refresh", workers, "command_1", "limit_1"),
    ]
    rounds = results["fast_rounds"]
    for endpoint, found, who, n, key, limit in rows:
        result = found[key]
        share = f"{100 * result['per_second'] / found[limit]['per_second']:.0f}%"
        if found is fast and key != limit and len(rounds) > 1:  # the command's fast rows
            low, high = shares_by_round(rounds, key, limit)
            share += f" [{low:.0f}–{high:.0f}%]"
        table.rows.append(
            [endpoint, who, n, with_range(result, "per_second"), share]
            + [result["token_requests"], result["refreshed"], result["seconds"]]
            + [result["server_cpu_ms"], with_range(result, "client_cpu_ms")]
        )
    facts = {"count": count, "workers": workers, "startup": startup, **results}
    section = Section("proactive", "4. Proactive refresh at scale", [table], facts)
    if len(rounds) > 1:
        section.notes.append(
            f"Fast endpoint rows: the median of {len(rounds)} rounds (bare client and command "
            "interleaved in each), the range over the rounds in brackets; the % of the limit "
            "compares the two medians, and in brackets the lowest and highest share within one "
            "round (the command against the bare client of the same round, which felt the same "
            "load from the rest of the machine). The DOT rows are one round."
        )
    section.notes += notes(startup, fast, dot)
    return section


def shares_by_round(rounds: list[dict], key: str, limit: str) -> tuple[float, float]:
    """The lowest and highest percentage of ``key``'s rate to ``limit``'s within a round."""
    shares = [100 * r[key]["per_second"] / r[limit]["per_second"] for r in rounds]
    return min(shares), max(shares)


def with_range(result: dict, name: str) -> str:
    """``value`` or ``value [low–high]`` when the result carries its rounds' range."""
    span = result.get("range", {}).get(name)
    if span is None or span[0] == span[1]:
        return str(result[name])
    return f"{result[name]} [{span[0]}–{span[1]}]"


def notes(startup: dict, fast: dict, dot: dict) -> list[str]:
    share = 100 * fast["command_1"]["per_second"] / fast["limit_1"]["per_second"]
    return [
        f"The limit: a bare httpx client at the command's concurrency against a token endpoint "
        f"that answers at once (no database; {fast['limit_1']['server_cpu_ms']} ms of server "
        f"CPU per refresh). oauthconn_refresh reaches {share:.0f}% of it: what bounds the "
        f"command there is its own work per token ({fast['command_1']['client_cpu_ms']} ms of "
        "CPU: the token request through the guarded client, decrypting and encrypting the "
        "tokens, validating the answer, storing it and the event; see the profile summary "
        "above the results).",
        "DOT rows: django-oauth-toolkit on Django's development server, a realistic provider "
        f"whose own cost ({dot['limit_1']['server_cpu_ms']} ms of server CPU per refresh) "
        "dominates both rows; the command's share there also reflects its CPU competing with "
        "the provider for the same cores, which a remote provider would not feel.",
        "The command's rates and CPU are its own account of its refresh (oauthconn_refresh "
        "-v 2: from the query for due tokens to the last result, the CPU of its process, "
        "threads and worker processes; for two copies the longer time and the sum of the "
        "CPU), so they leave out its start-up, which the seconds column includes (with "
        f"nothing due: {startup['seconds']:.2f} s, {startup['cpu']:.2f} s CPU: Python and "
        "Django). Two copies, and one copy with "
        "--processes 2 (PostgreSQL only: one run that forks two workers, each with the "
        "concurrency of a copy, its rows claimed by chunks as two copies claim them), are "
        "compared with the bare client at twice the concurrency.",
        "CPU per refresh: the token server's process (/proc) and the client side (this "
        "process for the bare client, the command's processes for oauthconn; the client "
        "database's own CPU is not counted). Everything shares the machine's "
        f"{os.cpu_count()} cores.",
    ]

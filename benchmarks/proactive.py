"""Item 4: proactive refresh at scale with the ``oauthconn_refresh`` management command.

K connections whose access tokens expire within the window are refreshed against the local
authorization server. The limit is the server's own token throughput, measured in the same run
with a bare httpx client sending the same refresh requests at the same concurrency. The command
runs as a real process (as cron would start it), once alone and then as two copies at once
on a fresh set; its start-up time, measured with nothing due, is reported apart.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import threading
import time

import httpx
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

WINDOW = 900


def bare_rate(ctx, client_id: str, secret: str, grants: list, workers: int) -> dict:
    """Refreshes per second the server sustains for a bare client with ``workers`` threads."""
    chunks = [grants[i::workers] for i in range(workers)]
    failures: list[int] = []

    def work(chunk: list) -> None:
        with httpx.Client(auth=(client_id, secret), timeout=60) as client:
            for _, refresh in chunk:
                data = {"grant_type": "refresh_token", "refresh_token": refresh}
                status = client.post(ctx.auth.token_endpoint, data=data).status_code
                if status != 200:
                    failures.append(status)

    threads = [threading.Thread(target=work, args=(chunk,)) for chunk in chunks]
    start, cpu, server_cpu = time.perf_counter(), time.process_time(), ctx.auth.cpu_seconds()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    return {
        "per_second": round(len(grants) / seconds, 1),
        "seconds": round(seconds, 2),
        "failures": len(failures),
        "client_cpu_ms": per_item(time.process_time() - cpu, len(grants)),
        "server_cpu_ms": per_item(ctx.auth.cpu_seconds() - server_cpu, len(grants)),
    }


def per_item(seconds: float, count: int) -> float:
    return round(1000 * seconds / max(count, 1), 2)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def command(copies: int) -> dict:
    """Start ``copies`` of the command at once; wall time, CPU time, what each reported."""
    args = [sys.executable, "manage.py", "oauthconn_refresh", "--window", str(WINDOW)]
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
    exit_codes = [p.returncode for p in procs]
    cpu = children_cpu() - cpu
    return {"seconds": seconds, "cpu": cpu, "refreshed": refreshed, "exit_codes": exit_codes}


def seed(ctx, app, secret: str, count: int) -> None:
    from oauthconn.models import Connection

    Connection.objects.all().delete()  # only these tokens are due
    grants = issue_grants(app, count, expired=False)
    make_connections(
        make_provider(ctx.auth),
        "pro",
        client_id=app.client_id,
        secret=secret,
        grants=grants,
        expires_in=WINDOW / 3,
    )


def command_rate(ctx, app, secret: str, count: int, copies: int, startup: dict) -> dict:
    """Run the command on ``count`` due tokens; rates and CPU without its start-up."""
    seed(ctx, app, secret, count)
    ctx.auth.reset()
    server_cpu = ctx.auth.cpu_seconds()
    result = command(copies)
    result["token_requests"] = ctx.auth.stats().get("total", 0)
    result["server_cpu_ms"] = per_item(ctx.auth.cpu_seconds() - server_cpu, count)
    result["client_cpu_ms"] = per_item(result.pop("cpu") - copies * startup["cpu"], count)
    result["per_second"] = round(count / max(result["seconds"] - startup["seconds"], 1e-3), 1)
    result["seconds"] = round(result["seconds"], 2)
    return result


def run(ctx) -> Section:
    count = 20 if ctx.smoke else 1000
    # The command refreshes one token at a time on SQLite and PROACTIVE_CONCURRENCY on others.
    workers = 1 if db.vendor == "sqlite" else 4
    app, secret = register_client("proactive")
    bare_rate(ctx, app.client_id, secret, issue_grants(app, 10), workers)  # warm-up
    limit = bare_rate(ctx, app.client_id, secret, issue_grants(app, count), workers)
    limit2 = bare_rate(ctx, app.client_id, secret, issue_grants(app, count), workers * 2)
    seed(ctx, app, secret, 0)
    startup = command(1)
    single = command_rate(ctx, app, secret, count, 1, startup)
    double = command_rate(ctx, app, secret, count, 2, startup)
    return report(count, workers, startup, limit, limit2, single, double)


def report(count, workers, startup, limit, limit2, single, double) -> Section:
    table = Table(
        f"{count:,} tokens due, refreshed against the local server",
        ["who", "concurrency", "refreshes/s", "% of the limit", "token requests seen"]
        + ["tokens refreshed", "seconds", "server CPU ms/refresh", "client CPU ms/refresh"],
    )
    bare = {"token_requests": count, "refreshed": count}
    rows = [
        ("bare httpx client (the limit)", workers, {**limit, **bare}, limit),
        ("bare httpx client", workers * 2, {**limit2, **bare}, limit),
        ("oauthconn_refresh", workers, single, limit),
        ("oauthconn_refresh, two copies at once", f"{workers} each", double, limit2),
    ]
    for who, concurrency, result, of in rows:
        share = f"{100 * result['per_second'] / of['per_second']:.0f}%"
        table.rows.append(
            [who, concurrency, result["per_second"], share, result["token_requests"]]
            + [result["refreshed"], result["seconds"], result["server_cpu_ms"]]
            + [result["client_cpu_ms"]]
        )
    facts = {"count": count, "startup": startup, "limit": limit, "limit_double": limit2}
    facts |= {"single": single, "double": double}
    section = Section("proactive", "4. Proactive refresh at scale", [table], facts)
    section.notes += [
        f"The command's rates and CPU exclude its start-up ({startup['seconds']:.2f} s, "
        f"{startup['cpu']:.2f} s CPU: Python, Django, the query for due tokens, measured with "
        "nothing due); its seconds column includes it. Two copies are compared with the bare "
        "client at twice the concurrency.",
        "CPU per refresh: the authorization server process (/proc) and the client side (this "
        "process for the bare client, the command's processes for oauthconn; the client "
        "database's own CPU is not counted). Both servers share the machine's "
        f"{os.cpu_count()} cores with the client.",
    ]
    return section

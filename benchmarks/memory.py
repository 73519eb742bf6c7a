"""Item 6: peak resident memory of a worker process after 10,000 calls through a connection.

Each client runs in a fresh child process, which reports its peak RSS after Django is set up
and after the calls. The peak is the kernel's ``VmHWM`` of the process: ``getrusage``'s
``ru_maxrss`` would also count the parent's memory at fork time, which Linux carries over.
"""

from __future__ import annotations

import json
import resource
import secrets
import subprocess
import sys
from pathlib import Path

from benchmarks.common import (
    ROOT,
    ResourceServer,
    Section,
    Table,
    child_env,
    make_connections,
    make_provider,
)

SLUG = "mem-0"
MODES = ("raw httpx.Client", "oauthconn conn.get()", "oauthconn conn.client()")


def peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # not Linux


def child(mode: str, url: str, token: str, calls: int) -> None:
    import django

    django.setup()
    import httpx

    from oauthconn import get_connection

    conn = get_connection(SLUG)
    clients = {
        "raw httpx.Client": lambda: httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}
        ),
        "oauthconn conn.get()": lambda: conn,
        "oauthconn conn.client()": conn.client,
    }
    http = clients[mode]()
    http.get("data")
    before = peak_mib()
    statuses = {http.get("data").status_code for _ in range(calls)}
    print(json.dumps({"before": before, "after": peak_mib(), "statuses": sorted(statuses)}))


def run(ctx) -> Section:
    token = secrets.token_urlsafe(30)
    server = ResourceServer(token)
    calls = 50 if ctx.smoke else 10_000
    try:
        make_connections(
            make_provider(ctx.auth),
            "mem",
            client_id="bench",
            secret="secret",
            grants=[(token, secrets.token_urlsafe(30))],
            api_base_url=server.url,
            expires_in=3600,
        )
        results = {mode: measure(mode, server.url, token, calls) for mode in MODES}
    finally:
        server.stop()
    table = Table(
        f"Peak RSS of a worker process, {calls:,} calls",
        ["client", "MiB after setup", "MiB after the calls", "growth MiB", "statuses"],
    )
    for mode, r in results.items():
        growth = round(r["after"] - r["before"], 1)
        table.rows.append([mode, r["before"], r["after"], growth, r["statuses"]])
    return Section("memory", "6. Memory", [table], {"calls": calls, **results})


def measure(mode: str, url: str, token: str, calls: int) -> dict:
    code = (
        "import sys; from benchmarks.memory import child; "
        "child(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, mode, url, token, str(calls)],
        env=child_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])

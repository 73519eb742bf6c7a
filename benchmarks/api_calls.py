"""Item 1: calling an API through a stored connection whose token is valid.

Every client calls the same local resource server, which checks the bearer token. The raw
``httpx.Client`` with a fixed Authorization header is the limit for the httpx-based clients
(oauthconn, Authlib): nothing can be faster than sending the header. A plain
``requests.Session`` with the same header is the same floor for requests-oauthlib, so its row
is not read as OAuth overhead when it is requests against httpx. Calls of the clients are
interleaved in rounds so drift on a shared machine spreads over all of them.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection as db
from django.test.utils import CaptureQueriesContext, override_settings

from benchmarks.common import (
    ResourceServer,
    Section,
    Table,
    make_connections,
    make_provider,
    median_us,
    p99_us,
    sample,
)
from benchmarks.report import svg_bars
from oauthconn import get_connection
from oauthconn.flows import change_feed

SLUG = "api-0"
LIMIT = "raw httpx.Client (the limit)"
KEPT = "oauthconn conn.get()"
PER_CALL = "oauthconn get_connection(slug).get() per call"
#: requests-oauthlib's own floor: what requests costs, with no OAuth at all
REQUESTS = "raw requests.Session (requests' floor)"
OAUTHLIB = "requests-oauthlib OAuth2Session"
#: calls per pattern for the socket count (TIME_WAIT entries last 60 s, so they add up)
SOCKET_CALLS = 1000


def build_clients(resource: ResourceServer, token: dict, token_endpoint: str) -> dict:
    """name -> zero-argument callable doing one API call, each client built once and reused."""
    import requests
    from authlib.integrations.httpx_client import OAuth2Client
    from requests_oauthlib import OAuth2Session

    raw = httpx.Client(base_url=resource.url, headers={"Authorization": f"Bearer {resource.token}"})
    conn = get_connection(SLUG)
    bound = conn.client()
    fresh = get_connection(SLUG)
    authlib = OAuth2Client(
        "bench", "secret", token=token, token_endpoint=token_endpoint, base_url=resource.url
    )
    session = OAuth2Session("bench", token=token)
    plain = requests.Session()
    plain.headers["Authorization"] = f"Bearer {resource.token}"
    data = f"{resource.url}/data"

    def per_request():
        with get_connection(SLUG) as c:
            return c.get("data")

    def raw_per_request():
        with httpx.Client(base_url=resource.url, headers=raw.headers) as c:
            return c.get("/data")

    return {
        LIMIT: lambda: raw.get("/data"),
        "raw httpx.Client, new client per request": raw_per_request,
        "oauthconn conn.client()": lambda: bound.get("data"),
        KEPT: lambda: fresh.get("data"),
        PER_CALL: lambda: get_connection(SLUG).get("data"),
        "oauthconn get_connection().get() per request": per_request,
        "Authlib OAuth2Client (httpx)": lambda: authlib.get("/data"),
        OAUTHLIB: lambda: session.get(data),
        REQUESTS: lambda: plain.get(data),
    }


def run(ctx) -> Section:
    token_value = secrets.token_urlsafe(30)
    resource = ResourceServer(token_value)
    try:
        provider = make_provider(ctx.auth)
        make_connections(
            provider,
            "api",
            client_id="bench",
            secret="secret",
            grants=[(token_value, secrets.token_urlsafe(30))],
            api_base_url=resource.url,
            expires_in=3600,
        )
        token = {
            "access_token": token_value,
            "token_type": "Bearer",
            "refresh_token": "unused",
            "expires_in": 3600,
        }
        clients = build_clients(resource, token, ctx.auth.token_endpoint)
        section = measure(ctx, clients)
        if db.vendor == "postgresql":
            prepared_statements(ctx, section)
            listening_for_changes(ctx, section)
        section.tables.append(socket_table(clients, resource.port, ctx.smoke))
        return section
    finally:
        resource.stop()


def measure(ctx, clients: dict) -> Section:
    statuses = {name: call().status_code for name, call in clients.items()}
    samples, cpu_us = interleaved(ctx, clients)
    queries = {
        name: count_queries(call, 20 if ctx.smoke else 200)
        for name, call in clients.items()
        if name.startswith("oauthconn")
    }
    return report(samples, statuses, queries, cpu_us)


def interleaved(ctx, clients: dict) -> tuple[dict[str, list[int]], dict[str, float]]:
    """Nanosecond samples and client CPU µs per call of each client, in interleaved rounds."""
    # Short rounds: a burst of load from elsewhere on the machine hits every client alike.
    rounds, per_round = (2, 10) if ctx.smoke else (60, 50)
    samples: dict[str, list[int]] = {name: [] for name in clients}
    cpu: dict[str, int] = dict.fromkeys(clients, 0)
    for call in clients.values():
        sample(call, 0, warmup=20 if ctx.smoke else 300)
    for _ in range(rounds):
        for name, call in clients.items():
            # A new client per call costs milliseconds; fewer samples tell as much.
            count = max(per_round // 10, 5) if "per request" in name else per_round
            started = time.process_time_ns()
            samples[name] += sample(call, count)
            cpu[name] += time.process_time_ns() - started
    cpu_us = {name: round(cpu[name] / len(samples[name]) / 1000, 1) for name in clients}
    return samples, cpu_us


#: Django's OPTIONS for psycopg's prepared statements (docs/operations.md)
PREPARED = {"server_side_binding": True, "prepare_threshold": 5}


def prepared_statements(ctx, section: Section) -> None:
    """PostgreSQL: the kept object and the per-call pattern again, with psycopg's prepared
    statements on (the lookup's version check keeps its plan without them, in a PL/pgSQL
    function; prepared, the call of that function is planned once per connection too)."""
    options = db.settings_dict.get("OPTIONS", {})
    db.close()
    db.settings_dict["OPTIONS"] = {**options, **PREPARED}
    try:
        ratio = kept_against_per_call(
            ctx, section, "Per call on PostgreSQL with prepared statements (µs)"
        )
    finally:
        db.close()  # the next benchmarks connect as configured
        db.settings_dict["OPTIONS"] = options
    section.facts["per_call_to_kept_prepared"] = ratio
    section.notes.append(
        "With OPTIONS server_side_binding and prepare_threshold (psycopg prepares the "
        "statements; the lookup's version check keeps its plan without them, in a PL/pgSQL "
        "function, migration 0020): "
        f"per call against a kept object {ratio['median']}× the median, {ratio['cpu']}× the "
        "client CPU."
    )


#: commits by another connection whose notification's delivery is timed
DELIVERIES = 200


def listening_for_changes(ctx, section: Section) -> None:
    """PostgreSQL with ``LISTEN_FOR_CHANGES``: the per-call pattern without the version
    check's round trip, and how long after another connection's COMMIT returns this process
    has heard of it (the window in which the old row may still be served)."""
    with override_settings(OAUTHCONN={**settings.OAUTHCONN, "LISTEN_FOR_CHANGES": True}):
        feed = change_feed.feed_for(db)
        try:
            deadline = time.monotonic() + 10
            while not feed.listening and time.monotonic() < deadline:
                time.sleep(0.01)
            ratio = kept_against_per_call(
                ctx, section, "Per call on PostgreSQL with LISTEN_FOR_CHANGES (µs)"
            )
            queries = count_queries(lambda: get_connection(SLUG).get("data"), 200)
            delays = delivery_delays(feed, 20 if ctx.smoke else DELIVERIES)
        finally:
            change_feed.stop_all()
    section.facts["per_call_to_kept_listening"] = ratio
    section.facts["listening_queries_per_call"] = queries
    section.facts["notification_delivery_us"] = {
        "median": median_us(delays),
        "p99": p99_us(delays),
        "max": round(max(delays) / 1000, 1),
    }
    section.notes.append(
        "With LISTEN_FOR_CHANGES (a change feed per process, migration 0024's triggers): "
        f"per call against a kept object {ratio['median']}× the median, {ratio['cpu']}× the "
        f"client CPU, {queries} DB queries per call. After another connection's COMMIT "
        f"returned, this process had heard of it within {median_us(delays)} µs (median), "
        f"{p99_us(delays)} µs (p99), {round(max(delays) / 1000, 1)} µs at most of "
        f"{len(delays)} commits: the window in which the old row may still be served."
    )


def delivery_delays(feed, commits: int) -> list[int]:
    """Nanoseconds from another connection's COMMIT returning to ``feed`` having heard it."""
    delays = []
    update = "UPDATE oauthconn_connection SET name = %s WHERE slug = %s"
    other = db.get_new_connection(db.get_connection_params())  # a second session, as Django's
    other.autocommit = True
    with other:
        name = other.execute("SELECT name FROM oauthconn_connection WHERE slug = %s", [SLUG])
        kept_name = name.fetchone()[0]
        for i in range(commits):
            heard = feed.stamp()
            other.execute(update, [f"{kept_name} ({i})", SLUG])  # a change: it notifies
            committed = time.perf_counter_ns()
            while feed.stamp() == heard:
                if time.perf_counter_ns() - committed > 10**10:
                    raise RuntimeError("no notification within 10 s")
            delays.append(time.perf_counter_ns() - committed)
        other.execute(update, [kept_name, SLUG])
    return delays


def kept_against_per_call(ctx, section: Section, title: str) -> dict[str, float]:
    """The kept object against the per-call pattern, as a table of ``section``; the ratios."""
    kept = get_connection(SLUG)
    clients = {
        KEPT: lambda: kept.get("data"),
        PER_CALL: lambda: get_connection(SLUG).get("data"),
    }
    samples, cpu_us = interleaved(ctx, clients)
    table = Table(title, ["client", "median µs", "p99 µs", "client CPU µs", "calls"])
    for name, values in samples.items():
        table.rows.append([name, median_us(values), p99_us(values), cpu_us[name], len(values)])
    section.tables.append(table)
    return {
        "median": round(median_us(samples[PER_CALL]) / median_us(samples[KEPT]), 2),
        "cpu": round(cpu_us[PER_CALL] / cpu_us[KEPT], 2),
    }


def time_wait_sockets(port: int) -> set[tuple[str, str]]:
    """TCP connections to or from ``port`` in TIME_WAIT (state 06), from /proc/net/tcp{,6}.

    A connection that is closed rather than kept for the next request leaves one behind for
    60 s on the side that closed it; they are what a new connection per call piles up.
    """
    found = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, remote, state = line.split()[1:4]
            ports = {int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)}
            if state == "06" and port in ports:
                found.add((local, remote))
    return found


def socket_table(clients: dict, port: int, smoke: bool) -> Table:
    table = Table(
        f"TCP connections left in TIME_WAIT by {SOCKET_CALLS} calls (new ones, both sides)",
        ["client", "calls", "new TIME_WAIT sockets"],
    )
    calls = 20 if smoke else SOCKET_CALLS
    for name in (LIMIT, KEPT, PER_CALL, "oauthconn get_connection().get() per request"):
        before = time_wait_sockets(port)
        for _ in range(calls):
            clients[name]()
        table.rows.append([name, calls, len(time_wait_sockets(port) - before)])
    return table


def count_queries(call, n: int) -> float:
    with CaptureQueriesContext(db) as captured:
        for _ in range(n):
            call()
    return len(captured) / n


def plot(medians: dict[str, float]) -> str:
    """The reused clients only: a per-request bar (milliseconds) would flatten the others."""
    kept = {name: us for name, us in medians.items() if "per request" not in name}
    return svg_bars("Median µs per API call, client reused", kept, "µs")


def report(samples: dict, statuses: dict, queries: dict, cpu_us: dict) -> Section:
    limit = median_us(samples[LIMIT])
    table = Table(
        "Per call, token valid (µs)",
        ["client", "median µs", "p99 µs", "ratio to limit", "client CPU µs", "CPU ratio"]
        + ["DB queries per call", "calls"],
    )
    for name, values in samples.items():
        med = median_us(values)
        q = queries.get(name, "")
        cpu_ratio = round(cpu_us[name] / cpu_us[LIMIT], 3)
        table.rows.append(
            [name, med, p99_us(values), round(med / limit, 3), cpu_us[name], cpu_ratio]
            + [q, len(values)]
        )
    medians = {name: median_us(values) for name, values in samples.items()}
    section = Section("api_calls", "1. Calling an API through a stored connection, token valid")
    section.tables.append(table)
    section.notes.append(
        "Client CPU: this process's CPU time per call (the servers run in other processes), "
        "steadier than wall time on a shared machine; the ratio is to the raw client's."
    )
    section.notes.append(
        "“per call” / “per request” rows get a new connection object for every call, as a view "
        "that calls get_connection() in each request does: they pay its lookup (on SQLite "
        "no query while the database is unchanged; on PostgreSQL one narrow query), and reuse "
        "the process's pooled TCP connection. The raw per-request row builds a new "
        "httpx.Client (a TLS context, tens of ms) and opens a new TCP connection each time."
    )
    section.facts = {"statuses": statuses, "queries_per_call": queries, "median_us": medians}
    section.facts["client_cpu_us"] = cpu_us
    section.facts["per_call_to_kept"] = {
        "median": round(medians[PER_CALL] / medians[KEPT], 2),
        "cpu": round(cpu_us[PER_CALL] / cpu_us[KEPT], 2),
    }
    section.notes.append(
        f"get_connection(slug).get() per call against a kept object: "
        f"{section.facts['per_call_to_kept']['median']}× the median, "
        f"{section.facts['per_call_to_kept']['cpu']}× the client CPU (target: at most 1.2×)."
    )
    section.facts["oauthlib_to_requests"] = {
        "median": round(medians[OAUTHLIB] / medians[REQUESTS], 2),
        "cpu": round(cpu_us[OAUTHLIB] / cpu_us[REQUESTS], 2),
    }
    section.notes.append(
        "requests-oauthlib's row is mostly requests against httpx: a plain requests.Session "
        "with a fixed Authorization header (no OAuth) is its floor. OAuth2Session over it: "
        f"{section.facts['oauthlib_to_requests']['median']}× the median, "
        f"{section.facts['oauthlib_to_requests']['cpu']}× the client CPU."
    )
    section.plots["api_calls.svg"] = plot(medians)
    return section

"""How long the health overview takes over many events (not part of ``benchmarks.run``).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/oauthconn_bench \\
        python -m benchmarks.health_overview --events 1000000

Migrates the database ``benchmarks/settings.py`` selects, fills it with ``--grants`` grants
and ``--events`` events spread over 30 days (PostgreSQL: one INSERT … SELECT
generate_series), then reports the median of ``--runs`` calls of ``compute_health`` and the
number of queries per call. The tables are emptied first: use a scratch database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--grants", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    fill(args.grants, args.events)
    measure(args.runs)


def fill(grants: int, events: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from oauthconn.models import Connection, Event, Provider, Token

    Event.objects.all().delete()
    Token.objects.all().delete()
    Connection.objects.all().delete()
    Provider.objects.all().delete()
    provider = Provider.objects.create(slug="p", name="P", token_endpoint="https://p.test/t")
    connections = Connection.objects.bulk_create(
        Connection(slug=f"c{i}", name=f"C{i}", provider=provider) for i in range(grants)
    )
    Token.objects.bulk_create(Token(connection=c, status="active") for c in connections)
    first, now = connections[0].pk, timezone.now()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            raise SystemExit("This benchmark fills the events with PostgreSQL's generate_series.")
        cursor.execute(
            "INSERT INTO oauthconn_event (connection_id, kind, message, data, created_at) "
            "SELECT %s + (n %% %s), (ARRAY['refreshed','refreshed','refreshed',"
            "'refresh_failed','authorized'])[1 + n %% 5], '', '{}'::jsonb, "
            "%s - (n * interval '30 days' / %s) FROM generate_series(1, %s) AS n",
            [first, grants, now, events, events],
        )
        cursor.execute("ANALYZE oauthconn_event")
    print(f"inserted {events} events in {time.perf_counter() - started:.1f} s")


def measure(runs: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from oauthconn.flows.health import compute_health

    compute_health()  # warm the cache
    timings = []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            compute_health()
            timings.append(time.perf_counter() - started)
    print(f"compute_health: median {statistics.median(timings) * 1000:.0f} ms over {runs} runs, ")
    print(f"{len(queries)} queries per call")
    for query in queries:
        print(f"  {float(query['time']) * 1000:7.1f} ms  {query['sql'][:110]}")


if __name__ == "__main__":
    main()

"""Item 5: the admin change list and the API list with 100 and with 10,000 connections.

Queries per page must not grow with the table; time per page is the median of several
requests through Django's test client (in process, no network). The table is emptied first,
so the counts are exact.
"""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext

from benchmarks.common import Section, Table, make_connections, make_provider, median_us, sample

PAGES = {
    "admin change list": "/admin/oauthconn/connection/",
    "API list": "/api/oauthconn/connections/",
}


def grow_to(ctx, total: int) -> None:
    from oauthconn.models import Connection

    have = Connection.objects.count()
    grants = [(secrets.token_urlsafe(30), secrets.token_urlsafe(30)) for _ in range(total - have)]
    make_connections(
        make_provider(ctx.auth),
        f"page{have}",
        client_id="bench",
        secret="secret",
        grants=grants,
        api_base_url="https://api.example.com/",
        expires_in=3600,
    )


def staff_client() -> Client:
    user, created = get_user_model().objects.get_or_create(
        username="bench-staff", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    return client


def measure(client: Client, url: str, n: int) -> tuple[int, int, float]:
    """(status, queries, median ms) for one page."""
    with CaptureQueriesContext(db) as captured:
        status = client.get(url).status_code
    # Read now: the next request's request_started signal empties the query log.
    queries = len(captured)
    samples = sample(lambda: client.get(url), n, warmup=1)
    return status, queries, round(median_us(samples) / 1000, 1)


def run(ctx) -> Section:
    from oauthconn.models import Connection

    Connection.objects.all().delete()
    sizes, n = ([10, 30], 2) if ctx.smoke else ([100, 10_000], 15)
    client = staff_client()
    table = Table("Per page", ["page", "connections", "HTTP status", "queries", "median ms"])
    facts: dict = {}
    for size in sizes:
        grow_to(ctx, size)
        for page, url in PAGES.items():
            status, queries, ms = measure(client, url, n)
            facts[f"{page} @ {size}"] = {"status": status, "queries": queries, "ms": ms}
            table.rows.append([page, size, status, queries, ms])
    section = Section("pages", "5. Admin and API at scale", [table], facts)
    for page in PAGES:
        counts = {facts[f"{page} @ {size}"]["queries"] for size in sizes}
        section.facts[f"{page} constant queries"] = len(counts) == 1
    return section

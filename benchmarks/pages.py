"""Item 5 / issue 11: every admin and API list page, each filter, the health command and the
due-token query, at a small size and at ``--rows`` connections, tokens and events.

Queries per page must not grow with the tables; time per page is the median of several
requests through Django's test client (in process, no network). The tables are emptied and
seeded with :mod:`benchmarks.pages_seed` (COPY on PostgreSQL), so the counts are exact.
``--rows 1000000`` is the long run (a few minutes of seeding on PostgreSQL).
"""

from __future__ import annotations

import io
from collections.abc import Callable

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection as db
from django.test import Client
from django.test.utils import CaptureQueriesContext

from benchmarks import pages_seed
from benchmarks.common import Section, Table, median_us, sample

ADMIN = "/admin/oauthconn"
API = "/api/oauthconn"
CONNECTION_STATUSES = [
    "connected",
    "expiring",
    "failing",
    "needs_reauth",
    "not_connected",
    "revoked",
]
TOKEN_STATUSES = ["active", "failing", "needs_reauth", "revoked"]
EVENT_KINDS = ["refreshed", "refresh_failed", "revoked"]


def pages(connection_id: int, provider_id: int) -> dict[str, str]:
    """Every list page and filter, by name."""
    found: dict[str, str] = {"admin connections": f"{ADMIN}/connection/"}
    for status in CONNECTION_STATUSES:
        found[f"admin connections ?status={status}"] = f"{ADMIN}/connection/?status={status}"
    found["admin connections ?provider"] = f"{ADMIN}/connection/?provider__id__exact={provider_id}"
    found["admin connections ?q="] = f"{ADMIN}/connection/?q=connection+{connection_id}"
    found["admin tokens"] = f"{ADMIN}/token/"
    for status in TOKEN_STATUSES:
        found[f"admin tokens ?status={status}"] = f"{ADMIN}/token/?status__exact={status}"
    found["admin tokens ?connection"] = f"{ADMIN}/token/?connection={connection_id}"
    found["admin tokens ?provider"] = (
        f"{ADMIN}/token/?connection__provider__id__exact={provider_id}"
    )
    found["admin tokens ?q="] = f"{ADMIN}/token/?q=page-{connection_id}"
    found["admin events"] = f"{ADMIN}/event/"
    for kind in EVENT_KINDS:
        found[f"admin events ?kind={kind}"] = f"{ADMIN}/event/?kind__exact={kind}"
    found["admin events ?connection"] = f"{ADMIN}/event/?connection={connection_id}"
    found["admin events ?provider"] = (
        f"{ADMIN}/event/?connection__provider__id__exact={provider_id}"
    )
    found["admin events ?q="] = f"{ADMIN}/event/?q=page-{connection_id}"
    popular = pages_seed.POPULAR
    found["admin connections ?q=popular"] = f"{ADMIN}/connection/?q=popular"
    found["admin connection page, popular"] = f"{ADMIN}/connection/{popular}/change/"
    found["admin tokens ?connection=popular"] = f"{ADMIN}/token/?connection={popular}"
    found["admin providers"] = f"{ADMIN}/provider/"
    found["admin providers ?q="] = f"{ADMIN}/provider/?q=provider+1"
    found["API connections"] = f"{API}/connections/"
    for status in [*TOKEN_STATUSES, "not_connected"]:
        found[f"API connections ?status={status}"] = f"{API}/connections/?status={status}"
    found["API connections ?provider"] = f"{API}/connections/?provider=page-provider-1"
    found["API connections ?per_user=true"] = f"{API}/connections/?per_user=true"
    found["API connections ?per_user=false"] = f"{API}/connections/?per_user=false"
    found["API me/connections"] = f"{API}/me/connections/"
    found["API providers"] = f"{API}/providers/"
    return found


def commands() -> dict[str, Callable[[], object]]:
    """What is measured outside the HTTP pages."""
    from oauthconn.flows.proactive import Policy

    return {
        "command oauthconn_health": lambda: health_command(),
        "command oauthconn_health --summary": lambda: health_command("--summary"),
        "due-token query": lambda: len(Policy.from_settings().candidates().values_list("pk")),
    }


def health_command(*args: str) -> int:
    """Run the command; 1 when it reports grants that need someone (the seed has some)."""
    try:
        call_command("oauthconn_health", *args, stdout=io.StringIO())
    except CommandError:
        return 1
    return 0


#: The API's "not connected" filter for other staff users, by how many of the per-user
#: connections they lack a grant on (one in N; None: they hold none). The main staff user
#: holds all of them, so nothing matches.
NOT_CONNECTED_CALLERS = {
    "holds none": None,
    "lacks 1 in 2,000": 2000,
    "lacks 1 in 20": 20,
}


def staff_client(username: str = "bench-staff") -> tuple[Client, int]:
    user, _ = get_user_model().objects.get_or_create(
        username=username, defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    return client, user.pk


def measure(call: Callable[[], object], n: int) -> tuple[object, int, float]:
    """(result, queries, median ms) of one page or command, queries counted on the second
    call: the first fills per-process caches (a content type) at whichever size it comes."""
    call()
    with CaptureQueriesContext(db) as captured:
        result = call()
    # Read now: the next request's request_started signal empties the query log.
    queries = len(captured)
    samples = sample(call, n)
    return result, queries, round(median_us(samples) / 1000, 1)


def run(ctx) -> Section:
    pages_seed.empty()
    rows = getattr(ctx, "rows", 100_000)
    sizes, n = ([10, 30], 2) if ctx.smoke else ([100, rows], 5 if rows > 200_000 else 9)
    client, staff_pk = staff_client()
    callers = {
        name: (*staff_client(f"bench-{name.replace(' ', '-').replace(',', '')}"), lacking)
        for name, lacking in NOT_CONNECTED_CALLERS.items()
    }
    table = Table("Per page", ["page", "rows", "result", "queries", "median ms"])
    facts: dict = {}

    def record(name: str, size: int, measured: tuple[object, int, float]) -> None:
        result, queries, ms = measured
        facts[f"{name} @ {size}"] = {"result": result, "queries": queries, "ms": ms}
        table.rows.append([name, size, result, queries, ms])

    have = 0
    for size in sizes:
        pages_seed.seed(have + 1, size + 1, staff_pk)
        pages_seed.seed_popular(have // 10, size // 10, staff_pk)
        urls = pages(connection_id=size // 2, provider_id=first_provider())
        calls = {name: bound_get(client, url) for name, url in urls.items()}
        for name, call in {**calls, **commands()}.items():
            record(name, size, measure(call, n))
        # Each other caller's grants exist only while their page is measured, so they change
        # no other page's matches (the seed is one grant per connection).
        for caller, (other, owner_pk, lacking) in callers.items():
            if lacking is not None:
                pages_seed.seed_user_grants(1, size + 1, owner_pk, lacking, 100_000_000)
            call = bound_get(other, f"{API}/connections/?status=not_connected")
            record(f"API connections ?status=not_connected, a caller who {caller}", size,
                   measure(call, n))  # fmt: skip
            pages_seed.remove_user_grants(owner_pk)
        have = size
    section = Section("pages", "5. Admin and API at scale", [table], facts)
    names = {key.rsplit(" @ ", 1)[0] for key in facts}
    for name in sorted(names):
        counts = {facts[f"{name} @ {size}"]["queries"] for size in sizes}
        section.facts[f"{name} constant queries"] = len(counts) == 1
    section.notes.append(
        "rows: connections, tokens and events each (one grant and one event per connection), "
        "plus a per-user connection with rows / 10 grants and users (popular). "
        "result: the HTTP status, or the command's exit code (1: it reported grants that need "
        "someone, which the seed has), or nothing for the due-token query."
    )
    return section


def bound_get(client: Client, url: str) -> Callable[[], int]:
    return lambda: client.get(url).status_code


def first_provider() -> int:
    from oauthconn.models import Provider

    return Provider.objects.filter(slug="page-provider-1").values_list("pk", flat=True)[0]

"""The health overview: aggregate figures over grants and events, for the admin page and
``oauthconn_health --summary``.

Everything here is counted in the database, never a loop over rows, so the cost stays a
constant number of queries however many grants and events there are. The event queries
filter on ``(kind, created_at)``, which migration 0003 indexes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, Field, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from oauthconn.conf import oauthconn_settings
from oauthconn.models import Event, EventKind, GrantType, Token, TokenStatus

#: The look-ahead windows of the "expiring" figures, by name.
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
#: How far back the failures-by-provider figure and the hourly chart look.
FAILURES_SINCE = timedelta(hours=24)
CHART_SPAN = timedelta(days=7)
CHART_KINDS = (EventKind.REFRESHED, EventKind.REFRESH_FAILED)


@dataclass(frozen=True)
class Health:
    """The figures of the overview (no secret: counts, names and times only)."""

    now: datetime
    by_status: dict[str, int]
    expiring: dict[str, dict[str, int]]
    failures_by_provider: list[tuple[str, int]]
    hours: list[datetime] = field(default_factory=list)
    refreshes: list[int] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)

    @property
    def grants(self) -> int:
        return sum(self.by_status.values())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for monitoring systems (``oauthconn_health --summary --json``)."""
        return {
            "type": "summary",
            "generated_at": self.now.isoformat(),
            "grants": self.grants,
            "by_status": self.by_status,
            "expiring": self.expiring,
            "refresh_failures_24h": dict(self.failures_by_provider),
            "hourly": [
                {"hour": hour.isoformat(), "refreshed": ok, "failed": failed}
                for hour, ok, failed in zip(self.hours, self.refreshes, self.failures, strict=True)
            ],
        }


def compute_health(now: datetime | None = None) -> Health:
    """The overview's figures in five queries, whatever the number of rows."""
    now = now or timezone.now()
    hours, refreshes, failures = _hourly(now)
    return Health(
        now=now,
        by_status=_by_status(),
        expiring=_expiring(now),
        failures_by_provider=_failures_by_provider(now),
        hours=hours,
        refreshes=refreshes,
        failures=failures,
    )


def _by_status() -> dict[str, int]:
    """Grants per status: all grants counted, those not active counted by status, and the
    active ones the difference.

    Nearly every grant is active, and grouping a million by status read the whole
    ``(status, expires_at)`` index comparing each entry's status (36 ms); a bare
    ``COUNT(*)``, which PostgreSQL answers from its smallest index, takes about half that.
    The other statuses are two index ranges either side of "active" (a few thousand
    entries; ``status <> 'active'`` would read them all), so a status outside
    ``TokenStatus`` is still counted as itself. Two statements, so a grant created or
    deleted in a status other than active between them moves the active figure by one.
    """
    active = TokenStatus.ACTIVE
    # COUNT(*), not COUNT(id): the status index then answers on its own.
    by_status = Token.objects.order_by().values_list("status").annotate(n=Count("*"))
    below, above = by_status.filter(status__lt=active), by_status.filter(status__gt=active)
    others = {str(status): n for status, n in below.union(above, all=True)}
    total = Token.objects.count()
    counts = {str(value): 0 for value in TokenStatus.values}
    counts.update(others)
    counts[str(active)] = total - sum(others.values())
    return counts


def _expiring(now: datetime) -> dict[str, dict[str, int]]:
    """Usable grants that will need someone within each window (one query, filtered counts).

    ``access_token``: no refresh token and a browser grant, so when the access token expires
    someone has to authorize again. ``refresh_token``: the refresh token's announced expiry,
    or its idle limit (``IDLE_REFRESH_DAYS`` after its last use) falls in the window.
    Already-past dates count too: such a grant is still marked active but will not renew.
    """
    aggregates = {}
    for name, span in WINDOWS.items():
        aggregates[f"{name}:access_token"] = Count("pk", filter=_access_ends(now + span))
        aggregates[f"{name}:refresh_token"] = Count("pk", filter=_refresh_stale(now + span))
    # Only the grants in the widest window are read (each window's figure is exact: a grant
    # in a narrower window is in the widest too). Each arm has a partial index (0009, 0010,
    # 0017), so a million grants none of which ends soon cost a few index lookups, not a scan.
    widest = now + max(WINDOWS.values())
    tokens = Token.objects.usable().alias(last_used=Coalesce("refreshed_at", "authorized_at"))
    candidates = tokens.filter(_access_ends(widest) | _refresh_stale(widest))
    figures = candidates.aggregate(**aggregates)
    result: dict[str, dict[str, int]] = {name: {} for name in WINDOWS}
    for key, n in figures.items():
        name, what = key.split(":")
        result[name][what] = n
    return result


def _access_ends(limit: datetime) -> Q:
    browser = ~Q(connection__grant_type=GrantType.CLIENT_CREDENTIALS)
    return browser & Q(refresh_token__isnull=True, expires_at__lte=limit)


def _refresh_stale(limit: datetime) -> Q:
    stale = Q(refresh_expires_at__lte=limit)
    idle_days = oauthconn_settings.IDLE_REFRESH_DAYS
    if idle_days:
        idle_before = limit - timedelta(days=idle_days)
        # Last refreshed, or authorized and never refreshed (the alias, as the due-token
        # query writes it: the expression 0010 indexes).
        stale |= Q(last_used__lte=idle_before)
    return Q(refresh_token__isnull=False) & stale


def _failures_by_provider(now: datetime) -> list[tuple[str, int]]:
    rows = (
        Event.objects.filter(kind=EventKind.REFRESH_FAILED, created_at__gte=now - FAILURES_SINCE)
        .order_by()
        .values_list("connection__provider__name")
        .annotate(n=Count("pk"))
    )
    return sorted(rows, key=lambda row: (-row[1], row[0]))


def _hourly(now: datetime) -> tuple[list[datetime], list[int], list[int]]:
    """Refreshes and refresh failures per hour over :data:`CHART_SPAN`, oldest first."""
    tz = timezone.get_current_timezone()
    # Step back in UTC from the current local hour: wall-clock arithmetic would skip or
    # repeat an hour at a daylight saving change.
    last = timezone.localtime(now, tz).replace(minute=0, second=0, microsecond=0)
    last = last.astimezone(UTC)
    count = int(CHART_SPAN / timedelta(hours=1))
    hours = [last - timedelta(hours=count - 1 - i) for i in range(count)]
    rows = _count_per_hour(hours, CHART_KINDS)
    refreshes = [row[0] for row in rows]
    failures = [row[1] for row in rows]
    return hours, refreshes, failures


def _count_per_hour(hours: list[datetime], kinds: tuple[str, ...]) -> list[tuple[int, ...]]:
    """Events of each of ``kinds`` in the hour from each of ``hours`` (one row per hour).

    One count per hour and kind, each an index-only range of ``(kind, created_at)``: a
    ``GROUP BY`` of the truncated time computed the hour of every event of the week and
    hashed it (155,000 events at a million, twice the cost of counting them), and
    truncating to local wall-clock time made the two hours that share a time when summer
    time ends one ambiguous time, which matched neither (their events were missing).
    """
    db = connections[Event.objects.db]
    quote = db.ops.quote_name
    table = quote(Event._meta.db_table)
    fields = [cast(Field, Event._meta.get_field(name)) for name in ("kind", "created_at")]
    kind, at = (quote(str(field.column)) for field in fields)
    count = f"(SELECT COUNT(*) FROM {table} WHERE {kind} = %s AND {at} >= h.f AND {at} < h.t)"
    hours_sql, hours_params = _hours(db, hours)
    sql = f"SELECT {', '.join([count] * len(kinds))} FROM {hours_sql} ORDER BY h.i"
    with db.cursor() as cursor:
        cursor.execute(sql, [*kinds, *hours_params])
        return [tuple(row) for row in cursor.fetchall()]


def _hours(db: BaseDatabaseWrapper, hours: list[datetime]) -> tuple[str, list[Any]]:
    """A derived table ``h`` of rows ``(i, f, t)``: each hour's position, start and end."""
    if db.vendor == "postgresql":
        # One array, not 500 parameters to render and parse; its length is the planner's
        # row estimate (a generate_series of the same hours is estimated at 1,000 rows, which
        # pushed the statement's cost over the JIT threshold: 5 ms of compiling).
        series = "unnest(%s::timestamptz[]) WITH ORDINALITY AS s(f, i)"
        sql = f"(SELECT i, f, f + interval '1 hour' AS t FROM {series}) AS h"
        return sql, [hours]
    # Elsewhere one-row SELECTs, which every database runs.
    adapt = db.ops.adapt_datetimefield_value
    params: list[Any] = []
    for i, start in enumerate(hours):
        params += [i, adapt(start), adapt(start + timedelta(hours=1))]
    one = "SELECT %s AS i, %s AS f, %s AS t"
    return f"({' UNION ALL '.join([one] * len(hours))}) AS h", params

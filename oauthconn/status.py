"""The status badge of a connection, computed from its token rows (metadata only).

One vocabulary for the change list, its filter and the connection page: connected, expiring,
failing, needs reauthorization, not connected, revoked.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connections
from django.db.models import Case, Exists, IntegerField, OuterRef, Q, QuerySet, Subquery, When
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from oauthconn.migrations._kept_counts import VENDORS as KEPT_COUNT_VENDORS
from oauthconn.models import Connection, GrantType, Token, TokenStatus

#: A grant that stops working within this time without the admin counts as "expiring".
EXPIRING_WITHIN = timedelta(days=3)

CONNECTED = "connected"
EXPIRING = "expiring"
FAILING = "failing"
NEEDS_REAUTH = "needs_reauth"
NOT_CONNECTED = "not_connected"
REVOKED = "revoked"

STATUS_CHOICES = [
    (CONNECTED, _("Connected")),
    (EXPIRING, _("Expiring")),
    (FAILING, _("Failing")),
    (NEEDS_REAUTH, _("Needs reauthorization")),
    (NOT_CONNECTED, _("Not connected")),
    (REVOKED, _("Revoked")),
]
STATUS_LABELS = dict(STATUS_CHOICES)


def grant_ends_at(token: Token) -> datetime | None:
    """When the grant stops working unless someone authorizes again (None: not known to end).

    With a refresh token that is the refresh token's expiry; without one, the access token's.
    Client credentials grants are renewed without anyone, so they never end.
    """
    if token.connection.grant_type == GrantType.CLIENT_CREDENTIALS:
        return None
    if token.refresh_token is not None:
        return token.refresh_expires_at
    return token.expires_at


def token_status(token: Token | None, now: datetime | None = None) -> str:
    """The badge for one owner's grant."""
    if token is None:
        return NOT_CONNECTED
    if token.status in (TokenStatus.FAILING, TokenStatus.NEEDS_REAUTH, TokenStatus.REVOKED):
        return str(token.status)
    if token.access_token is None:
        return NOT_CONNECTED
    ends = grant_ends_at(token)
    if ends is not None and ends <= (now or timezone.now()) + EXPIRING_WITHIN:
        return EXPIRING
    return CONNECTED


#: A per-user or per-owner connection's badge counts its connected grants up to this many
#: ("1000+ connected"): a popular one has a grant per user.
CONNECTED_COUNTED_UP_TO = 1000


class CountOf(Subquery):
    """How many rows a (sliced) subquery returns: ``COUNT(*)`` over it, bounded by its LIMIT."""

    template = "(SELECT COUNT(*) FROM (%(subquery)s) counted)"
    output_field = IntegerField()


def connected_grants() -> Case:
    """A ``Connection`` annotation: for a per-user or per-owner connection, how many of its
    grants show connected or expiring, counted up to ``CONNECTED_COUNTED_UP_TO + 1`` (one
    bounded index scan per row, however many users it has); None for a shared connection."""
    rows = Token.objects.filter(_usable(), connection=OuterRef("pk")).values("pk")
    counted = CountOf(rows[: CONNECTED_COUNTED_UP_TO + 1])
    return Case(When(Q(per_user=True) | Q(per_owner=True), then=counted), default=None)


def connected_label(count: int) -> str:
    """A :func:`connected_grants` count as the badge says it: past the bound, "1000+"."""
    return f"{CONNECTED_COUNTED_UP_TO}+" if count > CONNECTED_COUNTED_UP_TO else str(count)


def _usable() -> Q:
    return Q(status=TokenStatus.ACTIVE, access_token__isnull=False)


def _expiring(now: datetime) -> Q:
    soon = now + EXPIRING_WITHIN
    browser = ~Q(connection__grant_type=GrantType.CLIENT_CREDENTIALS)
    with_refresh = Q(refresh_token__isnull=False, refresh_expires_at__lte=soon)
    without_refresh = Q(refresh_token__isnull=True, expires_at__lte=soon)
    return _usable() & browser & (with_refresh | without_refresh)


def token_filter(status: str, now: datetime | None = None) -> Q:
    """A ``Token`` filter for the tokens that show ``status``."""
    now = now or timezone.now()
    if status in (FAILING, NEEDS_REAUTH, REVOKED):
        return Q(status=status)
    if status == EXPIRING:
        return _expiring(now)
    if status == CONNECTED:
        return _usable() & ~_expiring(now)
    raise ValueError(status)


def filter_connections(queryset: QuerySet[Connection], status: str) -> QuerySet[Connection]:
    """Connections with a grant in ``status`` (per-user: any user's grant)."""
    if status not in STATUS_LABELS:
        return queryset
    if status == NOT_CONNECTED:
        # No grant in any other state: no rows, or only empty rows.
        if keeps_grant_counts(queryset.db):
            return queryset.filter(held_grants=0)
        held = Token.objects.holding_grants().filter(connection=OuterRef("pk"))
        return queryset.filter(~Exists(held))
    tokens = Token.objects.filter(token_filter(status), connection=OuterRef("pk"))
    return queryset.filter(Exists(tokens))


def keeps_grant_counts(alias: str) -> bool:
    """Whether the database keeps ``Connection.held_grants`` and ``shared_grants`` (triggers
    of migrations 0019 and 0021: PostgreSQL and SQLite); elsewhere the "not connected"
    filters are anti-joins."""
    return connections[alias].vendor in KEPT_COUNT_VENDORS

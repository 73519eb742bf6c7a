"""The proactive refresh on PostgreSQL, a chunk of tokens at a time (issue 11).

One statement claims a chunk: ``UPDATE … SET lease_until … WHERE id IN (SELECT … FOR UPDATE
SKIP LOCKED) RETURNING id``, committed at once, so another copy of the job (and an on-demand
renewal, see ``flows.tokens.exclusively``) leaves those rows alone until the lease ends. The
token requests then run with no transaction open; each renewal is stored by one UPDATE that
also ends the lease (:class:`~oauthconn.flows.outcomes.Lease`), committed before the next use
of the refresh token, and the chunk's events are written together at the end. A worker
killed mid-chunk loses nothing: its leases run out and the next run takes those rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import connection as db_connection
from django.utils import timezone

from oauthconn.exceptions import OAuthConnError
from oauthconn.flows.common import LEASE_MARGIN, record_events
from oauthconn.flows.outcomes import Lease, Outcome, renewing_as, storing_under
from oauthconn.flows.tokens import renew_locked_token
from oauthconn.models import Token

logger = logging.getLogger("oauthconn")

#: tokens one worker claims at once: fewer statements per token, but a longer lease on each
CHUNK = 8

#: (token pk, seconds its renewal's requests may take: ``common.lease_for``)
Row = tuple[int, float]


def claim(rows: list[Row]) -> tuple[datetime, list[int]]:
    """Lease those of ``rows`` no one holds, for all their renewals one after the other."""
    until = timezone.now() + timedelta(seconds=sum(s for _, s in rows) + LEASE_MARGIN)
    table = db_connection.ops.quote_name(Token._meta.db_table)
    sql = (
        f"UPDATE {table} SET lease_until = %s WHERE id IN ("
        f"SELECT id FROM {table} WHERE id = ANY(%s)"
        " AND (lease_until IS NULL OR lease_until <= %s) FOR UPDATE SKIP LOCKED) RETURNING id"
    )
    with db_connection.cursor() as cursor:
        cursor.execute(sql, [until, [pk for pk, _ in rows], timezone.now()])
        return until, [pk for (pk,) in cursor.fetchall()]


def refresh_chunk(
    rows: list[Row], is_due: Callable[[Token], bool], result: Callable[[Outcome], str], source: str
) -> list[str]:
    """Claim ``rows`` and renew the due ones; one result per row, "skipped" for rows another
    worker holds or that are no longer due (re-checked on the row as claimed)."""
    until, pks = claim(rows)
    lease = Lease(until)
    claimed = list(
        Token.objects.select_related("connection__provider", "owner")
        .filter(pk__in=pks)
        .order_by("expires_at", "pk")
    )
    results = ["skipped"] * (len(rows) - len(claimed))
    try:
        with renewing_as(source=source), storing_under(lease):
            results += [_refresh(token, is_due, result) for token in claimed]
    finally:
        # Also after an error: the events of what was stored, and the other leases ended.
        record_events(lease.events)
        _release([t.pk for t in claimed if t.pk not in lease.stored], until)
    return results


def _refresh(
    token: Token, is_due: Callable[[Token], bool], result: Callable[[Outcome], str]
) -> str:
    if not is_due(token):
        return "skipped"
    try:
        return result(renew_locked_token(token, force=True))
    except OAuthConnError as err:
        # A connection that cannot work must not stop the run for the others.
        logger.warning("oauthconn proactive refresh of token %s failed: %s", token.pk, err)
        return "failed"


def _release(pks: list[int], until: datetime) -> None:
    """End the lease of the rows no renewal stored (not due, failed): one statement."""
    if pks:
        Token.objects.filter(pk__in=pks, lease_until=until).update(lease_until=None)

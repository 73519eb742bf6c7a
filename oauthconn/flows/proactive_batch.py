"""The proactive refresh on PostgreSQL, a chunk of tokens at a time (issue 11).

One statement claims a chunk and reads it: ``UPDATE … SET lease_until … WHERE id IN (SELECT …
FOR UPDATE SKIP LOCKED) RETURNING …``, joined with each row's connection and provider and
committed at once, so another copy of the job (and an on-demand renewal, see
``flows.tokens.exclusively``) leaves those rows alone until the lease ends. The token
requests then run with no transaction open; each renewal is stored by one UPDATE that also
ends the lease (:class:`Lease`), committed before the next use of the refresh token, and the
chunk's events are written together at the end. A worker killed mid-chunk loses nothing: its
leases run out and the next run takes those rows.

Both statements are written once per database and their rows turned into model instances
without the ORM's compiler: compiling a three-table ``select_related`` and an UPDATE of
eighteen columns for every token cost more CPU than the token request itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.db import connections, router
from django.db.models import Field
from django.utils import timezone

from oauthconn.exceptions import OAuthConnError
from oauthconn.flows.common import LEASE_MARGIN, record_events
from oauthconn.flows.outcomes import RENEWAL_FIELDS, Outcome, renewing_as, storing_under
from oauthconn.flows.rows import (
    Converters,
    KeptByRow,
    PerDatabase,
    build_instance,
    column_converters,
    convert_row,
    hand_written_cursor,
    insert_all,
    qualified_columns,
)
from oauthconn.flows.tokens import renew_locked_token
from oauthconn.models import Connection, Event, Provider, Token

logger = logging.getLogger("oauthconn")

#: tokens one worker claims at once (the statements of a claim are shared by its tokens)
CHUNK = 50

#: (token pk, seconds its renewal's requests may take: ``common.lease_for``)
Row = tuple[int, float]


@dataclass(frozen=True)
class _Statements:
    """The claim, the store and the lease extension of one database, written once."""

    claim: str
    store: str
    extend: str
    store_fields: list[Field]
    connection_width: int
    provider_width: int
    converters: Converters


def _write(alias: str) -> _Statements:
    """The statements of database ``alias`` (see :data:`_for`)."""
    db = connections[alias]
    qn = db.ops.quote_name
    token_t, conn_t, prov_t = (qn(m._meta.db_table) for m in (Token, Connection, Provider))
    token_cols = [qn(str(f.column)) for f in Token._meta.concrete_fields]
    connection_cols, provider_cols = (
        qualified_columns(Connection, qn),
        qualified_columns(Provider, qn),
    )
    token_connection = qn(str(Token._meta.get_field("connection").column))
    connection_provider = qn(str(Connection._meta.get_field("provider").column))
    claim = (
        f"WITH claimed AS (UPDATE {token_t} SET lease_until = %s WHERE id IN ("
        f"SELECT id FROM {token_t} WHERE id = ANY(%s)"
        " AND (lease_until IS NULL OR lease_until <= %s) FOR UPDATE SKIP LOCKED)"
        f" RETURNING {', '.join(token_cols)}) "
        f"SELECT {', '.join(connection_cols + provider_cols)}, "
        f"{', '.join(f'claimed.{c}' for c in token_cols)} FROM claimed "
        f"INNER JOIN {conn_t} ON ({conn_t}.id = claimed.{token_connection}) "
        f"INNER JOIN {prov_t} ON ({prov_t}.id = {conn_t}.{connection_provider}) "
        "ORDER BY claimed.expires_at, claimed.id"
    )
    store_fields = [cast(Field, Token._meta.get_field(name)) for name in RENEWAL_FIELDS]
    assignments = ", ".join(f"{qn(str(f.column))} = %s" for f in store_fields)
    # Written even when the lease ran out and another worker took the row: the provider
    # has already replaced the refresh token it answered with, so ours is the one to keep
    # (the other worker's request fails with invalid_grant and finds it, R37).
    store = (
        f"UPDATE {token_t} SET {assignments}, lease_until = CASE WHEN lease_until = %s"
        " THEN NULL ELSE lease_until END WHERE id = %s"
    )
    extend = (
        f"UPDATE {token_t} SET lease_until = %s WHERE id = ANY(%s) AND lease_until = %s"
        " RETURNING id"
    )
    return _Statements(
        claim=claim,
        store=store,
        extend=extend,
        store_fields=store_fields,
        connection_width=len(connection_cols),
        provider_width=len(provider_cols),
        converters=column_converters(Connection, db)
        + column_converters(Provider, db)
        + column_converters(Token, db),
    )


#: the statements of each database, written on first use
_for = PerDatabase(_write)


@dataclass
class Lease:
    """A chunk's claim on token rows until ``until``.

    Renewals inside :func:`~oauthconn.flows.outcomes.storing_under` store through it: one
    UPDATE per token, the events kept in ``events`` for the chunk to write at once.
    """

    alias: str
    until: datetime
    events: list[Event] = field(default_factory=list)
    stored: set[int] = field(default_factory=set)
    lost: set[int] = field(default_factory=set)
    #: every end this lease has had (an extension moves only the rows left)
    ends: list[datetime] = field(default_factory=list)
    _cursor: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.ends.append(self.until)

    def cursor(self) -> Any:
        """The chunk's cursor for its statements, kept until :meth:`close` (a cursor opened
        for every token cost about 2 % of a renewal's CPU), and opened again if Django
        has replaced the database connection meanwhile."""
        db = connections[self.alias]
        if self._cursor is None or self._cursor.connection is not db.connection:
            self.close()
            self._cursor = hand_written_cursor(db)
        return self._cursor

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None

    def holds(self, pk: int, seconds: float, left: list[int]) -> bool:
        """Whether row ``pk`` is still ours for ``seconds`` more (its renewal's worst case).

        When the lease would end sooner (or within half of ``LEASE_MARGIN`` of its end) it is
        extended, for ``left`` (the rows not renewed yet) in one statement; a row another
        worker took meanwhile (possible only if this one stalled past the lease) is ours no
        more.
        """
        now = timezone.now()
        if now + timedelta(seconds=seconds + LEASE_MARGIN / 2) > self.until:
            needed = now + timedelta(seconds=seconds + LEASE_MARGIN)
            cursor = self.cursor()
            cursor.execute(_for(self.alias).extend, [needed, left, self.until])
            self.lost.update(set(left) - {found for (found,) in cursor.fetchall()})
            self.until = needed
            self.ends.append(needed)
        return pk not in self.lost

    def store(self, token: Token) -> None:
        """Write the renewed columns and end the lease, if it still is ours: one statement."""
        statements, db = _for(self.alias), connections[self.alias]
        token.updated_at = timezone.now()
        fields = statements.store_fields
        values = [f.get_db_prep_save(getattr(token, f.attname), db) for f in fields]
        self.cursor().execute(statements.store, [*values, self.until, token.pk])
        token.lease_until = None
        self.stored.add(token.pk)


def claim(rows: list[Row]) -> tuple[Lease, list[Token]]:
    """Lease those of ``rows`` no one holds, for as long as the longest of their renewals may
    take, and read them with their connections and providers, oldest expiry first."""
    alias = router.db_for_write(Token)
    statements = _for(alias)
    until = timezone.now() + timedelta(seconds=max(s for _, s in rows) + LEASE_MARGIN)
    with hand_written_cursor(connections[alias]) as cursor:
        cursor.execute(statements.claim, [until, [pk for pk, _ in rows], timezone.now()])
        found = cursor.fetchall()
    tokens = _instances(alias, statements, found)
    _attach_owners(tokens)
    return Lease(alias, until), tokens


def _instances(alias: str, statements: _Statements, found: list[tuple[Any, ...]]) -> list[Token]:
    """The claimed rows as tokens; the rows of one connection share its (read-only) instance,
    as those of one provider share the provider's: most of a row's columns are theirs."""
    split = statements.connection_width
    width = split + statements.provider_width
    converters = statements.converters
    connections_: KeptByRow[Connection] = KeptByRow()
    providers: KeptByRow[Provider] = KeptByRow()

    def build(model: type[Any], start: int, end: int, raw: tuple[Any, ...]) -> Any:
        return build_instance(model, alias, convert_row(converters[start:end], raw, alias))

    def connection_of(config: tuple[Any, ...]) -> Connection:
        connection = build(Connection, 0, split, config[:split])
        provider = providers.get(
            config[split:], lambda: build(Provider, split, width, config[split:])
        )
        Connection.provider.field.set_cached_value(connection, provider)
        return connection

    tokens = []
    for raw in found:
        config = raw[:width]
        token = build(Token, width, len(converters), raw[width:])
        connection = connections_.get(config, partial(connection_of, config))
        Token.connection.field.set_cached_value(token, connection)
        tokens.append(token)
    return tokens


def _attach_owners(tokens: list[Token]) -> None:
    """The users owning per-user grants (their events name them): one query, if any."""
    owner_ids = {t.owner_id for t in tokens if t.owner_id is not None}
    if not owner_ids:
        return
    users = get_user_model()._default_manager.in_bulk(owner_ids)
    for token in tokens:
        if token.owner_id is not None:
            Token.owner.field.set_cached_value(token, users.get(token.owner_id))


def refresh_chunk(
    rows: list[Row], is_due: Callable[[Token], bool], result: Callable[[Outcome], str], source: str
) -> list[str]:
    """Claim ``rows`` and renew the due ones; one result per row, "skipped" for rows another
    worker holds or that are no longer due (re-checked on the row as claimed)."""
    lease, claimed = claim(rows)
    seconds = dict(rows)
    results = ["skipped"] * (len(rows) - len(claimed))
    try:
        with closing(lease), renewing_as(source=source), storing_under(lease):
            for i, token in enumerate(claimed):
                left = [t.pk for t in claimed[i:]]
                ours = lease.holds(token.pk, seconds[token.pk], left)
                results.append(_refresh(token, is_due, result) if ours else "skipped")
    finally:
        # Also after an error: the events of what was stored, and the other leases ended
        # (even when writing the events fails, e.g. a signal receiver raising).
        try:
            record_events(lease.events, insert=partial(insert_all, lease.alias))
        finally:
            _release([t.pk for t in claimed if t.pk not in lease.stored], lease.ends)
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


def _release(pks: list[int], ends: list[datetime]) -> None:
    """End the lease of the rows no renewal stored (not due, failed), if it still is this
    chunk's (one of its ends: a row done before an extension kept the earlier one): one
    statement."""
    if pks:
        Token.objects.filter(pk__in=pks, lease_until__in=ends).update(lease_until=None)

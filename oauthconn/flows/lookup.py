"""``get_connection``'s one query, and a per-process cache that can never be stale.

Each call reads one row: the connection by slug, its provider, and the owner's token row (a
LEFT JOIN, so "not connected yet" costs no second query). Building three model instances
from those ~85 columns through the ORM cost up to 50 times the statement itself, so the
connection and provider are built only when their columns differ from the last ones this
process saw. The comparison is with the values of the row just read, so a changed secret,
endpoint, API base URL or token status, however it was written (``save()``, ``update()``,
another process, raw SQL), is seen by the next call. The token row is built fresh every
time; its access token is decrypted again only when its ciphertext changed.

Reading the row itself is skipped when the database proves it did not change (issue 11):

- SQLite: no statement while ``PRAGMA data_version`` (commits by any other connection) and
  the connection's ``total_changes`` (its own writes) are unchanged, outside a transaction,
  on the same sqlite3 connection (:func:`_sqlite_row`; a new connection per request,
  ``CONN_MAX_AGE = 0``, always reads).
- PostgreSQL: the same join selecting only each tuple's ``(xmin, ctid)``, in a PL/pgSQL
  function whose plan the session keeps (migration 0020); when those are the ones read last
  time, so is every column (:func:`_versioned_row`). A change costs that narrow statement
  and then the whole row.

There is no time window in either: what is checked is the database's own state, read in
the call. PostgreSQL sites may trade that for no statement at all (``LISTEN_FOR_CHANGES``,
flows/change_feed.py): a row read before is served while the process's change feed vouches
for it, which it does until a notification names the row's connection or provider. A
notification arrives after the writer's commit, so a request that follows another
process's write by less than that may be served the old row: the reason it is opt-in.

The cached ``Connection`` is shared by the process's clients and is read-only.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django.db import connections, router
from django.db.models import Field, Model

from oauthconn.crypto import Sealed
from oauthconn.exceptions import ConnectionNotFound
from oauthconn.flows import change_feed
from oauthconn.flows.rows import (
    Converters,
    KeptByRow,
    PerDatabase,
    build_instance,
    column_converters,
    convert_row,
    convert_value,
    qualified_columns,
)
from oauthconn.models import Connection, Provider, Token
from oauthconn.models.owners import is_user, owner_key

if TYPE_CHECKING:
    from oauthconn.types import Owner

#: grants whose decrypted access token is kept; beyond this the cache starts over
MAX_GRANTS = 10_000

#: PostgreSQL: the version checks of the shared, owned and keyed joins (migration 0020)
VERSION_FUNCTIONS = [
    ("oauthconn_grant_versions_shared", "%s"),
    ("oauthconn_grant_versions_owned", "%s, %s"),
    ("oauthconn_grant_versions_keyed", "%s, %s"),
]


@dataclass(frozen=True)
class _Plan:
    """The statement and the converters of one database, prepared once."""

    shared_sql: str
    owned_sql: str
    keyed_sql: str
    owner_field: Any
    config_width: int
    #: where the provider's columns begin (its key first); the connection's key is column 0
    provider_at: int
    #: where the token's columns end; PostgreSQL's rows then carry the tuples' versions
    row_width: int
    #: PostgreSQL: statement -> the same join selecting only the three tuples' versions
    versions_sql: dict[str, str]
    token_converters: Converters
    config_converters: Converters


#: the connection (with its provider) of each configuration row this process read
_configs: KeptByRow[Connection] = KeptByRow()
_sealed: dict[tuple[int, Any, str], Sealed] = {}
#: (alias, token id) -> (the token's columns as read, their Python values, the mutable ones)
_token_rows: dict[tuple[str, Any], tuple[tuple[Any, ...], tuple[Any, ...], tuple[int, ...]]] = {}
#: PostgreSQL: (alias, statement, parameters) -> the last row (its tuples' versions last), the
#: change feed's stamp taken before it was read or confirmed, and the feed's keys for it
_rows: dict[tuple[Any, ...], tuple[tuple[Any, ...], change_feed.Stamp | None, tuple[str, ...]]] = {}
#: per thread: {alias: (sqlite3 connection, {statement and parameters: (version, row)})}
_thread = threading.local()


def load_grant(slug: str, owner: Owner = None) -> tuple[Connection, Token | None]:
    """The connection ``slug`` and the token row of ``owner`` (None: the shared grant).

    One query. Raises :class:`ConnectionNotFound` when no connection has that slug, and
    ConfigurationError for an owner that is neither a user nor a saved model instance (the
    caller checks that the owner's kind fits the connection: models.owners.check_owner).
    """
    alias = router.db_for_read(Token)
    plan = _plan(alias)
    if owner is None:
        sql, params = plan.shared_sql, [slug]
    elif is_user(owner):
        owner_pk = plan.owner_field.get_db_prep_value(owner.pk, connections[alias])
        sql, params = plan.owned_sql, [owner_pk, slug]
    else:
        sql, params = plan.keyed_sql, [owner_key(owner), slug]
    row, heard = _fetch_one(alias, plan, sql, params, trust_feed=True)
    connection, token = _grant(alias, plan, slug, row)
    if heard and token is not None and token.needs_refresh():
        # A renewal is not notified (migration 0024): another process may have renewed this
        # grant already, and its row says so. Ask before renewing.
        row, _ = _fetch_one(alias, plan, sql, params, trust_feed=False)
        connection, token = _grant(alias, plan, slug, row)
    return connection, token


def _grant(
    alias: str, plan: _Plan, slug: str, row: tuple[Any, ...] | None
) -> tuple[Connection, Token | None]:
    if row is None:
        raise ConnectionNotFound(f"No OAuth connection with the slug {slug!r}.")
    connection = _connection(alias, plan, row[: plan.config_width])
    return connection, _token(alias, plan, connection, row[plan.config_width : plan.row_width])


def _fetch_one(
    alias: str, plan: _Plan, sql: str, params: list[Any], trust_feed: bool
) -> tuple[tuple[Any, ...] | None, bool]:
    """The row, and whether it was served on the change feed's word (no statement)."""
    db = connections[alias]
    if db.vendor == "sqlite":
        return _sqlite_row(db, sql, params), False
    if sql in plan.versions_sql:
        return _versioned_row(db, plan, sql, params, trust_feed)
    return _query(db, sql, params), False


def _query(db: Any, sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


# --- PostgreSQL: the row again when its three tuples are the ones read before ---------------


def _versioned_row(
    db: Any, plan: _Plan, sql: str, params: list[Any], trust_feed: bool
) -> tuple[Any, bool]:
    """The row, or the one this process read before when the same three tuples answer, or
    without asking when the change feed vouches for it (and ``trust_feed``).

    A tuple's ``(xmin, ctid)`` names one version of a row: an UPDATE, whatever sent it,
    writes a new tuple with its transaction's id at a new place, and the content of a tuple
    never changes. So when the join still finds the tuples it found last time, their columns
    are the ones read then, and only those few narrow columns cross the wire. Otherwise (the
    first call, or anything changed) the whole row is read again, in its own statement.
    Two tuple versions could share both only if the 32-bit transaction counter wrapped
    around while this process kept the row and a new tuple landed on the same slot.
    """
    key = (db.alias, sql, *params)
    kept = _rows.get(key)
    # Inside a transaction the row may be its own uncommitted write, which notifies nobody
    # if it is rolled back: such a row is neither served on the feed's word nor stamped.
    feed = change_feed.feed_for(db) if not _in_transaction(db) else None
    if kept is not None and feed is not None and trust_feed and feed.vouches(kept[1], kept[2]):
        return kept[0], True
    # Taken before the statements: a change committed after it is either in what they read
    # or in a notification heard after it, which voids this stamp.
    stamp = feed.stamp() if feed is not None else None
    if kept is not None:
        versions = _query(db, plan.versions_sql[sql], params)
        if versions is None:
            return None, False
        if versions == kept[0][-len(versions) :]:
            # The same row: a newer stamp, else the one it had (what was heard since that
            # one still voids it).
            _rows[key] = (kept[0], kept[1] if stamp is None else stamp, kept[2])
            return kept[0], False
    row = _query(db, sql, params)
    if row is not None:
        if len(_rows) >= MAX_GRANTS:
            _rows.clear()
        _rows[key] = (row, stamp, (f"c{row[0]}", f"p{row[plan.provider_at]}"))
    return row, False


def _in_transaction(db: Any) -> bool:
    """Whether a statement now would run in a transaction (whose own writes notify nobody
    until they commit)."""
    if db.connection is None:
        return not db.settings_dict["AUTOCOMMIT"]
    return db.in_atomic_block or not db.autocommit


# --- SQLite: the row again, without the statement, when the database did not change ----------


def _sqlite_row(db: Any, sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    """The row, read again only when the database may have changed since this thread's
    connection last read it.

    SQLite says so without a query over the tables: ``PRAGMA data_version`` changes when any
    other connection (another thread or process) commits, and the connection's
    ``total_changes`` counts every row it wrote itself, committed or rolled back. Both are
    read before the row, so a write that lands between them and the statement makes the next
    call read again. Rows are kept only outside a transaction (autocommit), where the
    statement would see the latest commit; inside one the statement always runs.
    """
    db.ensure_connection()
    raw = db.connection
    if raw.in_transaction:
        return _query(db, sql, params)
    seen = _seen_by(db.alias, raw)
    version = (raw.execute("PRAGMA data_version").fetchone()[0], raw.total_changes)
    key = (sql, *params)
    kept = seen.get(key)
    if kept is not None and kept[0] == version:
        return kept[1]
    row = _query(db, sql, params)
    if len(seen) >= MAX_GRANTS:
        seen.clear()
    seen[key] = (version, row)
    return row


def _seen_by(alias: str, raw: Any) -> dict[tuple[Any, ...], tuple[tuple[int, int], Any]]:
    """This thread's rows for ``alias``, valid for the sqlite3 connection ``raw`` only: the
    counters of a new connection (Django reconnects) start over."""
    by_alias: dict[str, tuple[Any, dict[Any, Any]]] = _thread.__dict__.setdefault("rows", {})
    current = by_alias.get(alias)
    if current is None or current[0] is not raw:
        current = by_alias[alias] = (raw, {})
    return current[1]


def _connection(alias: str, plan: _Plan, raw: tuple[Any, ...]) -> Connection:
    def build() -> Connection:
        values = convert_row(plan.config_converters, raw, alias)
        width = len(Connection._meta.concrete_fields)
        connection = build_instance(Connection, alias, values[:width])
        provider = build_instance(Provider, alias, values[width:])
        Connection.provider.field.set_cached_value(connection, provider)
        return connection

    return _configs.get(raw, build)


def _token(alias: str, plan: _Plan, connection: Connection, raw: tuple[Any, ...]) -> Token | None:
    if raw[0] is None:
        return None  # the LEFT JOIN found no row for this owner
    token = build_instance(Token, alias, _token_values(alias, plan, raw))
    Token.connection.field.set_cached_value(token, connection)
    if token.access_token is not None:
        grant = (connection.pk, token.owner_id, token.owner_key)
        token.access_token = _decrypted_once(grant, token.access_token)
    return token


def _token_values(alias: str, plan: _Plan, raw: tuple[Any, ...]) -> list[Any]:
    """The token row's Python values, converted again only where its columns changed.

    Values that can be changed in place (a JSON dict or list) are converted afresh for each
    instance; the others (str, int, datetime, ``Sealed``) cannot be, so instances share them.
    """
    key = (alias, raw[0])
    kept = _token_rows.get(key)
    if kept is None or kept[0] != raw:
        values = convert_row(plan.token_converters, raw, alias)
        mutable = tuple(i for i, value in enumerate(values) if isinstance(value, (dict, list)))
        if len(_token_rows) >= MAX_GRANTS:
            _token_rows.clear()
        _token_rows[key] = (raw, tuple(values), mutable)
        return values
    values = list(kept[1])
    db = connections[alias]
    for i in kept[2]:
        values[i] = convert_value(plan.token_converters[i], raw[i], db)
    return values


def _decrypted_once(grant: tuple[int, Any, str], sealed: Sealed) -> Sealed:
    """The ``Sealed`` already decrypted for this ciphertext, if this process has one."""
    known = _sealed.get(grant)
    if known is not None and known.ciphertext == sealed.ciphertext:
        return known
    if len(_sealed) >= MAX_GRANTS:
        _sealed.clear()
    _sealed[grant] = sealed
    return sealed


# --- the statement, prepared once per database ------------------------------------------------


def _prepare(alias: str) -> _Plan:
    """The statements of database ``alias`` (see :data:`_plan`)."""
    db = connections[alias]
    qn = db.ops.quote_name
    conn_t, prov_t, token_t = (qn(m._meta.db_table) for m in (Connection, Provider, Token))
    owner_field = Token._meta.get_field("owner")
    columns = [qualified_columns(m, qn) for m in (Connection, Provider, Token)]

    def col(model: type[Model], name: str) -> str:
        field = cast(Field, model._meta.get_field(name))
        return f"{qn(model._meta.db_table)}.{qn(str(field.column))}"

    froms = (
        f"FROM {conn_t} "
        f"INNER JOIN {prov_t} ON ({col(Connection, 'provider')} = {col(Provider, 'id')}) "
        f"LEFT OUTER JOIN {token_t} ON ({col(Token, 'connection')} = {col(Connection, 'id')} "
    )
    where = f"WHERE {col(Connection, 'slug')} = %s"
    # Token's constraints allow one row per (connection, owner), per (connection, owner_key)
    # and one shared row, so the join yields at most one row: no ORDER BY or LIMIT to spend
    # time on. The owner's parameter (in the join) comes before the slug's. The shared and
    # keyed joins name both owner columns, so no kind of owner is ever served another's row
    # (a connection switched from per-team to shared still has its teams' rows).
    owner, key = col(Token, "owner"), col(Token, "owner_key")
    tails = [
        f"{froms}AND {owner} IS NULL AND {key} = '') {where}",
        f"{froms}AND {owner} = %s) {where}",
        f"{froms}AND {owner} IS NULL AND {key} = %s) {where}",
    ]
    selected = ", ".join(c for cols in columns for c in cols)
    versions = {}
    if db.vendor == "postgresql":  # each tuple's version, last (see _versioned_row)
        tuples = ", ".join(f"{t}.xmin::text, {t}.ctid::text" for t in (conn_t, prov_t, token_t))
        selected += ", " + tuples
        # The same join in PL/pgSQL functions (migration 0020), whose plans PostgreSQL
        # keeps: planning the statement cost several times running it.
        versions = {
            f"SELECT {selected} {tail}": f"SELECT * FROM {function}({arguments})"
            for tail, (function, arguments) in zip(tails, VERSION_FUNCTIONS, strict=True)
        }
    shared_sql, owned_sql, keyed_sql = (f"SELECT {selected} {tail}" for tail in tails)
    return _Plan(
        shared_sql=shared_sql,
        owned_sql=owned_sql,
        keyed_sql=keyed_sql,
        versions_sql=versions,
        owner_field=owner_field,
        config_width=len(columns[0]) + len(columns[1]),
        provider_at=len(columns[0]),
        row_width=sum(len(cols) for cols in columns),
        token_converters=column_converters(Token, db),
        config_converters=column_converters(Connection, db) + column_converters(Provider, db),
    )


#: the statements and converters of each database, prepared on first use
_plan = PerDatabase(_prepare)

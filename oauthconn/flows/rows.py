"""Model instances from raw rows, for the two hot statements written by hand.

``get_connection``'s lookup (flows/lookup.py) and the proactive refresh's claim
(flows/proactive_batch.py) each send one statement written once per database and turn its
rows into instances the way Django's compiler would (the backend's and the fields'
converters, then ``Model.from_db``), without compiling a queryset on every call: that
compilation cost more than the statement itself.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from django.db import connections
from django.db.models import Model

Converter = Callable[..., Any]
#: per column: the functions to apply to its raw value, and the column they are given
Converters = list[tuple[list[Converter], Any]]

T = TypeVar("T")


class PerDatabase(Generic[T]):
    """What ``build(alias)`` returns, built once per database alias and kept."""

    def __init__(self, build: Callable[[str], T]) -> None:
        self._build = build
        self._built: dict[str, T] = {}
        self._lock = threading.Lock()

    def __call__(self, alias: str) -> T:
        found = self._built.get(alias)
        if found is None:
            with self._lock:
                found = self._built[alias] = self._build(alias)
        return found


class KeptByRow(Generic[T]):
    """Instances kept by primary key (the row's first column), built again only when the
    row's columns differ from the ones they were built from: comparing a row costs far less
    than converting it and building instances, and a changed row is never served stale."""

    def __init__(self) -> None:
        self._kept: dict[Any, tuple[tuple[Any, ...], T]] = {}

    def get(self, raw: tuple[Any, ...], build: Callable[[], T]) -> T:
        kept = self._kept.get(raw[0])
        if kept is None or kept[0] != raw:
            kept = self._kept[raw[0]] = (raw, build())
        return kept[1]


def hand_written_cursor(db: Any) -> Any:
    """A cursor of ``db`` for the hand-written statements, wrapped as ``db.cursor()`` wraps
    its own (query logging, ``execute_wrapper``), that sends parameters apart from the SQL.

    Django's psycopg cursor interpolates every parameter into the SQL text in Python
    (client-side binding, the default): for the renewal's UPDATE of twenty values, about a
    fifth of the statement's client CPU here. Server-side binding without preparing (Django
    leaves ``prepare_threshold`` unset unless the site sets it) sends one unnamed statement,
    which a transaction-pooling PgBouncer handles like any other. Other backends, and
    psycopg 2, get ``db.cursor()``.
    """
    if not _binds_server_side(db):
        return db.cursor()
    from django.db.backends.postgresql.base import ServerBindingCursor

    # What ``db.cursor()`` does (BaseDatabaseWrapper._cursor), with this cursor class.
    db.close_if_health_check_failed()
    db.ensure_connection()
    with db.wrap_database_errors:
        # django-stubs describe the psycopg 2 cursor's constructor
        return db._prepare_cursor(ServerBindingCursor(db.connection))  # type: ignore[call-arg]


def _binds_server_side(db: Any) -> bool:
    """PostgreSQL through psycopg 3, whose cursors can send parameters apart from the SQL."""
    return db.vendor == "postgresql" and hasattr(db.Database, "Cursor")


def insert_all(alias: str, instances: Sequence[Model]) -> None:
    """``bulk_create`` of ``instances`` (one model, a serial primary key) on PostgreSQL.

    One statement, written once per model: the rows' values go as one array per column
    (``INSERT … SELECT * FROM unnest(…)``, as Django's own ``bulk_create`` writes it on
    PostgreSQL), bound server-side and sent in binary (``%b``). Neither the SQL nor the
    number of its parameters grows with the rows, so psycopg parses it once (a statement of
    more than 50 parameters it parses again on every call), and it writes no array literal,
    whose every text element it would quote with a regular expression. No INSERT is compiled
    per call, and one round trip replaces the three of ``bulk_create``'s transaction (a
    single statement is atomic by itself). A chunk of 50 events: 27 µs of client CPU per
    row, where a ``VALUES`` list of 450 parameters took 80. (psycopg 2 binds on the client:
    it writes the arrays into the SQL.)
    """
    model = type(instances[0])
    db = connections[alias]
    columns = [
        [field.get_db_prep_save(field.pre_save(row, True), db) for row in instances]
        for field in _inserted_fields(model)
    ]
    with hand_written_cursor(db) as cursor:
        cursor.execute(_insert_sql(alias, model), columns)
        keys = cursor.fetchall()
    # RETURNING gives the rows in the order of the arrays (what bulk_create relies on too).
    for row, (pk,) in zip(instances, keys, strict=True):
        row.pk = pk
        row._state.adding = False
        row._state.db = alias


@functools.cache
def _inserted_fields(model: type[Model]) -> list[Any]:
    return [f for f in model._meta.concrete_fields if f is not model._meta.pk]


@functools.cache
def _insert_sql(alias: str, model: type[Model]) -> str:
    db = connections[alias]
    qn = db.ops.quote_name
    fields = _inserted_fields(model)
    columns = ", ".join(qn(str(f.column)) for f in fields)
    # The arrays' element types without a length (varchar, not varchar(64)): a cast would cut
    # a value that is too long, where the column refuses it.
    binary = "%b" if _binds_server_side(db) else "%s"
    arrays = ", ".join(f"{binary}::{f.db_type(db).split('(')[0]}[]" for f in fields)
    return (
        f"INSERT INTO {qn(model._meta.db_table)} ({columns}) SELECT * FROM unnest({arrays})"
        f" RETURNING {qn(str(model._meta.pk.column))}"
    )


def qualified_columns(model: type[Model], qn: Callable[[str], str]) -> list[str]:
    """``table.column`` for each concrete field, in the order ``from_db`` expects."""
    table = qn(model._meta.db_table)
    return [f"{table}.{qn(str(f.column))}" for f in model._meta.concrete_fields]


def column_converters(model: type[Model], db: Any) -> Converters:
    """Per column, what Django's compiler would apply to the raw value (backend and field)."""
    result = []
    for field in model._meta.concrete_fields:
        column = field.get_col(model._meta.db_table)
        functions = db.ops.get_db_converters(column) + column.get_db_converters(db)
        result.append((functions, column))
    return result


def convert_row(converters: Converters, raw: tuple[Any, ...], alias: str) -> list[Any]:
    """``raw``'s values as the fields hold them (``converters`` aligned with its columns)."""
    connection = connections[alias]
    # Most columns have no converter: no call for those (a claim converts ~90 per row).
    return [
        convert_value(converter, value, connection) if converter[0] else value
        for converter, value in zip(converters, raw, strict=True)
    ]


def convert_value(converter: tuple[list[Converter], Any], value: Any, connection: Any) -> Any:
    """One column's raw ``value`` as its field holds it."""
    functions, column = converter
    for function in functions:
        value = function(value, column, connection)
    return value


def build_instance(model: type[Model], alias: str, values: list[Any]) -> Any:
    """An instance of ``model`` from converted values, as a queryset would make it."""
    return model.from_db(alias, _attnames(model), values)


@functools.cache
def _attnames(model: type[Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]

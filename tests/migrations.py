"""Moving the test database along oauthconn's migrations, for the tests of a migration."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate_to(name: str) -> None:
    MigrationExecutor(connection).migrate([("oauthconn", name)])


@contextmanager
def migrated_back_to(name: str) -> Iterator[Apps]:
    """The database at oauthconn's migration ``name`` (the models of then are yielded),
    and at the latest migrations again afterwards, whatever the test did in between."""
    executor = MigrationExecutor(connection)
    head = executor.loader.graph.leaf_nodes()
    try:
        migrate_to(name)
        yield executor.loader.project_state([("oauthconn", name)]).apps
    finally:
        MigrationExecutor(connection).migrate(head)


def token_table_triggers() -> set[str]:
    """The names of the triggers on the token table (SQLite or PostgreSQL)."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                " AND tbl_name = 'oauthconn_token'"
            )
        else:
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'oauthconn_token'::regclass"
            )
        return {row[0] for row in cursor.fetchall()}

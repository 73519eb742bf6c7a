"""Moving the test database along oauthconn's migrations, for the tests of a migration."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrate_to(name: str) -> Apps:
    """The database at oauthconn's migration ``name``; the models of then are returned."""
    executor = MigrationExecutor(connection)
    executor.migrate([("oauthconn", name)])
    return executor.loader.project_state([("oauthconn", name)]).apps


@contextmanager
def migrated_back_to(name: str) -> Iterator[Apps]:
    """The database at oauthconn's migration ``name`` (the models of then are yielded),
    and at the latest migrations again afterwards, whatever the test did in between."""
    head = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        yield migrate_to(name)
    finally:
        MigrationExecutor(connection).migrate(head)


def provider_and_managers(apps: Apps) -> tuple[Any, Any, Any]:
    """In the models of ``apps`` (an older state): a new provider, and the managers of the
    connections and the tokens, to write the rows a migration is then tested on."""
    provider = apps.get_model("oauthconn", "Provider").objects.create(slug="p", name="P")
    connections = apps.get_model("oauthconn", "Connection").objects
    return provider, connections, apps.get_model("oauthconn", "Token").objects


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

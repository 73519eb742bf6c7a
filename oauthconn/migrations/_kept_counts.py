"""Connection columns the database keeps: how many of a connection's token rows meet a condition.

A filter that asks "which connections have no such row" must otherwise prove it row by row,
an anti-join over both tables (half a second or more at a million connections). With the
count kept on the connection, the filter reads a partial index of the connections whose
count is zero. Triggers on the token table keep it, so no write path can forget it: not the
ORM, not ``QuerySet.update()``, not raw SQL, not ``COPY``.

- **PostgreSQL:** a PL/pgSQL function and two row triggers. An increment is atomic under
  concurrent writers (``n = n + 1`` is re-read under the row lock), so two rows of one
  connection changing at once cannot skew it. :meth:`KeptCount.install` creates the
  triggers and counts the existing rows under a brief SHARE lock on the token table (writes
  wait for the count, not for the connections' update), in one transaction; the counts are
  added to the connections after that commit. Changes after the commit are counted by the
  triggers, those before by the backfill, and additions commute, so no change is lost or
  counted twice.
- **SQLite:** three triggers; the single writer makes the backfill consistent as it is.
- **Other databases:** no triggers; the filters keep their anti-join.

Caution for later migrations on SQLite, which rebuilds a table for most column changes:
- a rebuild of the token table drops these triggers: create them again afterwards
  (``create_triggers`` of each count; the tests fail if one is gone);
- a rebuild of the connection table fails while they exist (they update it): drop them
  before and create them after, as migration 0021 does for 0019's.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction

VENDORS = ("postgresql", "sqlite")


class KeptCount:
    """``Connection.<column>``: how many of its token rows meet ``condition``.

    ``condition(row)`` is SQL about the row ``row`` (``OLD``, ``NEW``, or ``""`` for the
    table itself); ``watched`` are the token columns it reads, besides ``connection_id``.
    ``stem`` names the SQLite triggers.
    """

    def __init__(
        self, column: str, stem: str, condition: Callable[[str], str], watched: tuple[str, ...]
    ) -> None:
        self.column = column
        self.condition = condition
        self.watched = ", ".join([*watched, "connection_id"])
        self.function = f"oauthconn_count_{column}"
        self.triggers = {
            "postgresql": [f"oauthconn_token_{column}", f"oauthconn_token_{column}_change"],
            "sqlite": [f"oauthconn_token_{stem}_{op}" for op in ("insert", "delete", "update")],
        }

    def where(self, row: str) -> str:
        prefix = f"{row}." if row else ""
        return self.condition(prefix)

    def add(self, sign: str, row: str) -> str:
        return (
            f"UPDATE oauthconn_connection SET {self.column} = {self.column} {sign} 1"
            f" WHERE id = {row}.connection_id"
        )

    def changed(self) -> str:
        """SQL: an update that moves the count (the row's connection or its condition)."""
        return (
            f"OLD.connection_id IS DISTINCT FROM NEW.connection_id"
            f" OR {self.where('OLD')} IS DISTINCT FROM {self.where('NEW')}"
        )

    def postgresql(self) -> list[str]:
        insert_or_delete, change = self.triggers["postgresql"]
        return [
            f"""CREATE OR REPLACE FUNCTION {self.function}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            IF {self.where("OLD")} THEN {self.add("-", "OLD")}; END IF;
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            IF {self.where("NEW")} THEN {self.add("+", "NEW")}; END IF;
        END IF;
        RETURN NULL;
    END $$""",
            f"""CREATE TRIGGER {insert_or_delete} AFTER INSERT OR DELETE ON oauthconn_token
    FOR EACH ROW EXECUTE FUNCTION {self.function}()""",
            f"""CREATE TRIGGER {change}
    AFTER UPDATE OF {self.watched} ON oauthconn_token
    FOR EACH ROW WHEN ({self.changed()}) EXECUTE FUNCTION {self.function}()""",
        ]

    def sqlite(self) -> list[str]:
        insert, delete, update = self.triggers["sqlite"]
        return [
            f"""CREATE TRIGGER {insert} AFTER INSERT ON oauthconn_token
    WHEN {self.where("NEW")} BEGIN {self.add("+", "NEW")}; END""",
            f"""CREATE TRIGGER {delete} AFTER DELETE ON oauthconn_token
    WHEN {self.where("OLD")} BEGIN {self.add("-", "OLD")}; END""",
            f"""CREATE TRIGGER {update}
    AFTER UPDATE OF {self.watched} ON oauthconn_token
    WHEN {self.changed().replace("IS DISTINCT FROM", "IS NOT")} BEGIN
        {self.add("-", "OLD")} AND {self.where("OLD")};
        {self.add("+", "NEW")} AND {self.where("NEW")};
    END""",
        ]

    def create_triggers(self, schema_editor) -> None:
        """The triggers (again, after a rebuild of the token table on SQLite)."""
        statements = {"postgresql": self.postgresql, "sqlite": self.sqlite}
        for statement in statements[schema_editor.connection.vendor]():
            schema_editor.execute(statement)

    def install(self, apps, schema_editor) -> None:
        """RunPython: the triggers, then the counts of the rows that exist (see the module)."""
        vendor = schema_editor.connection.vendor
        if vendor not in VENDORS:
            return
        backfill = f"oauthconn_{self.column}_backfill"
        with transaction.atomic(using=schema_editor.connection.alias):
            if vendor == "postgresql":
                schema_editor.execute("LOCK TABLE oauthconn_token IN SHARE MODE")
            self.create_triggers(schema_editor)
            schema_editor.execute(
                f"CREATE TEMPORARY TABLE {backfill} AS SELECT connection_id, COUNT(*) AS n"
                f" FROM oauthconn_token WHERE {self.where('')} GROUP BY connection_id"
            )
        column = self.column
        if vendor == "postgresql":
            schema_editor.execute(
                f"UPDATE oauthconn_connection SET {column} = {column} + b.n"
                f" FROM {backfill} b WHERE oauthconn_connection.id = b.connection_id"
            )
        else:
            schema_editor.execute(
                f"UPDATE oauthconn_connection SET {column} = {column}"
                f" + (SELECT n FROM {backfill} b WHERE b.connection_id = oauthconn_connection.id)"
                f" WHERE id IN (SELECT connection_id FROM {backfill})"
            )
        schema_editor.execute(f"DROP TABLE {backfill}")

    def uninstall(self, apps, schema_editor) -> None:
        """RunPython backwards: drop the triggers (the column goes with its AddField)."""
        vendor = schema_editor.connection.vendor
        for trigger in self.triggers.get(vendor, []):
            on = " ON oauthconn_token" if vendor == "postgresql" else ""
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {trigger}{on}")
        if vendor == "postgresql":
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {self.function}()")

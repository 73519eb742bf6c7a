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
  Since migration 0022 both counts are kept per statement instead (:class:`KeptPerStatement`:
  one update of each connection per statement, where a row trigger made a statement over a
  connection's many grants quadratic); :class:`KeptCount` still installs the first triggers.
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


class KeptPerStatement:
    """PostgreSQL: ``counts`` kept by statement-level triggers instead of row triggers.

    A row trigger updates the connection row once per token row. One statement that changes
    many grants of one connection (dropping a per-user connection's grants after a change of
    client, deleting it, a bulk import) then updates the same connection row thousands of
    times in one transaction, and PostgreSQL walks the growing chain of its versions each
    time: 4,000 grants took 8 s, 100,000 would take hours with the row locked. These
    triggers read the statement's transition tables and update each connection whose count
    moved once, by the sum (still an increment under the row lock, so concurrent writers
    stay exact). SQLite updates in place and keeps the row triggers.
    """

    function = "oauthconn_count_grants"
    #: TG_OP -> (trigger name, its transition tables with their signs)
    OPERATIONS = {
        "INSERT": ("oauthconn_token_counts_insert", [("new_rows", "")]),
        "UPDATE": ("oauthconn_token_counts_update", [("old_rows", "-"), ("new_rows", "")]),
        "DELETE": ("oauthconn_token_counts_delete", [("old_rows", "-")]),
    }

    def __init__(self, counts: list[KeptCount]) -> None:
        self.counts = counts
        self.triggers = {
            "postgresql": [name for name, _ in self.OPERATIONS.values()],
            "sqlite": [name for count in counts for name in count.triggers["sqlite"]],
        }

    def moved(self, sources: list[tuple[str, str]]) -> str:
        """PL/pgSQL: add what the statement's rows moved to each connection, one ``UPDATE``
        by primary key per connection whose count moved, in id order.

        A loop in id order, not one ``UPDATE … FROM`` the aggregate: the id order is the
        order in which the rows are locked, so two statements moving the same connections
        cannot deadlock here.

        The ``UPDATE`` is an ``EXECUTE``, planned afresh each time (a little planning per
        moved connection). A plan PostgreSQL keeps after five runs reflects the table's size
        then: one kept while the connection table was small scanned all of it for every
        moved connection once it had grown (a 100,000-grant ``COPY`` ran for over ten
        minutes). The aggregate reads only the transition tables, so its kept plan is sound,
        and a statement that moves no count (every refresh) plans nothing.
        """
        columns = [count.column for count in self.counts]
        rows = " UNION ALL ".join(
            "SELECT connection_id, "
            + ", ".join(f"{sign}({c.where(table)})::int AS {c.column}" for c in self.counts)
            + f" FROM {table}"
            for table, sign in sources
        )
        sums = ", ".join(f"SUM({column}) AS {column}" for column in columns)
        nonzero = " OR ".join(f"SUM({column}) <> 0" for column in columns)
        assignments = ", ".join(
            f"{column} = {column} + ${n}" for n, column in enumerate(columns, 1)
        )
        key = f"${len(columns) + 1}"
        values = ", ".join(f"moved.{column}" for column in [*columns, "connection_id"])
        return (
            f"FOR moved IN SELECT connection_id, {sums} FROM ({rows}) r"
            f" GROUP BY connection_id HAVING {nonzero} ORDER BY connection_id LOOP"
            f" EXECUTE 'UPDATE oauthconn_connection SET {assignments} WHERE id = {key}'"
            f" USING {values};"
            " END LOOP"
        )

    def postgresql(self) -> list[str]:
        branches = "\n        ELSIF ".join(
            f"TG_OP = '{op}' THEN {self.moved(sources)};"
            for op, (_, sources) in self.OPERATIONS.items()
        )
        statements = [
            f"""CREATE OR REPLACE FUNCTION {self.function}() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE moved record;
    BEGIN
        IF {branches}
        END IF;
        RETURN NULL;
    END $$"""
        ]
        for op, (name, sources) in self.OPERATIONS.items():
            tables = " ".join(
                f"{'OLD' if table == 'old_rows' else 'NEW'} TABLE AS {table}"
                for table, _ in sources
            )
            statements.append(
                f"CREATE TRIGGER {name} AFTER {op} ON oauthconn_token REFERENCING {tables}"
                f" FOR EACH STATEMENT EXECUTE FUNCTION {self.function}()"
            )
        return statements

    def install(self, apps, schema_editor) -> None:
        """RunPython: swap the row triggers for these in one transaction. The counts are
        right before and after, and no write lands in between (DROP TRIGGER locks the token
        table until the commit), so nothing is recounted."""
        if schema_editor.connection.vendor != "postgresql":
            return
        with transaction.atomic(using=schema_editor.connection.alias):
            for count in self.counts:
                count.uninstall(apps, schema_editor)
            for statement in self.postgresql():
                schema_editor.execute(statement)

    def uninstall(self, apps, schema_editor) -> None:
        """RunPython backwards: the row triggers again."""
        if schema_editor.connection.vendor != "postgresql":
            return
        with transaction.atomic(using=schema_editor.connection.alias):
            for name in self.triggers["postgresql"]:
                schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON oauthconn_token")
            schema_editor.execute(f"DROP FUNCTION IF EXISTS {self.function}()")
            for count in self.counts:
                count.create_triggers(schema_editor)

"""Count each connection's held grants in the database, for the "not connected" filter.

"Not connected" means no grant of the connection holds anything: no access token, and no
failing, needs-reauthorization or revoked state. Asked as an anti-join it must read both
tables to prove that none of a million connections qualifies (0.5–0.9 s). This migration adds
``Connection.held_grants`` and keeps it in the database: a trigger on the token table adds one
when a grant starts holding something and takes one away when it stops (insert, update of
``access_token``, ``status`` or ``connection_id``, delete), so no write path can forget it:
not the ORM, not ``QuerySet.update()``, not raw SQL, not ``COPY``. The filter then reads a
partial index of the connections whose count is zero.

- **PostgreSQL:** a PL/pgSQL function and two row triggers. An increment is atomic under
  concurrent writers (``held_grants = held_grants + 1`` is re-read under the row lock), so
  two grants of one connection changing at once cannot skew it. The backfill counts the
  existing grants under a brief SHARE lock on the token table (writes wait for the count of
  the grants, not for the connections' update), in the same transaction that creates the
  triggers; the counts are then added to the connections after that commit. Changes made
  after the commit are counted by the triggers, those before by the backfill, and additions
  commute, so no change is lost or counted twice. The index is built concurrently.
- **SQLite:** three triggers; the single writer makes the backfill consistent as it is.
- **Other databases:** no triggers; the filters keep the anti-join (``oauthconn.status``).

Caution for later migrations: SQLite rebuilds a table for most column changes, and the
rebuild drops that table's triggers. A migration that alters the token table on SQLite must
create them again (``create_triggers``); ``tests/test_held_grants.py`` fails if they are gone.
"""

from django.db import migrations, models, transaction

from oauthconn.migrations._operations import AddIndexConcurrentlyOnPostgres

FUNCTION = "oauthconn_count_held_grants"
TRIGGERS = {
    "postgresql": ["oauthconn_token_held_grants", "oauthconn_token_held_grants_change"],
    "sqlite": [
        "oauthconn_token_held_insert",
        "oauthconn_token_held_delete",
        "oauthconn_token_held_update",
    ],
}


def held(row: str) -> str:
    """SQL: the grant ``row`` (OLD, NEW or the table) holds something."""
    prefix = f"{row}." if row else ""
    return (
        f"({prefix}access_token IS NOT NULL"
        f" OR {prefix}status IN ('failing', 'needs_reauth', 'revoked'))"
    )


def add(sign: str, row: str) -> str:
    return (
        f"UPDATE oauthconn_connection SET held_grants = held_grants {sign} 1"
        f" WHERE id = {row}.connection_id"
    )


def changed() -> str:
    """SQL: an update that moves the count (ownership of the grant or whether it holds)."""
    return (
        f"OLD.connection_id IS DISTINCT FROM NEW.connection_id"
        f" OR {held('OLD')} IS DISTINCT FROM {held('NEW')}"
    )


POSTGRESQL = [
    f"""CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            IF {held("OLD")} THEN {add("-", "OLD")}; END IF;
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            IF {held("NEW")} THEN {add("+", "NEW")}; END IF;
        END IF;
        RETURN NULL;
    END $$""",
    f"""CREATE TRIGGER oauthconn_token_held_grants AFTER INSERT OR DELETE ON oauthconn_token
    FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()""",
    f"""CREATE TRIGGER oauthconn_token_held_grants_change
    AFTER UPDATE OF access_token, status, connection_id ON oauthconn_token
    FOR EACH ROW WHEN ({changed()}) EXECUTE FUNCTION {FUNCTION}()""",
]

SQLITE = [
    f"""CREATE TRIGGER oauthconn_token_held_insert AFTER INSERT ON oauthconn_token
    WHEN {held("NEW")} BEGIN {add("+", "NEW")}; END""",
    f"""CREATE TRIGGER oauthconn_token_held_delete AFTER DELETE ON oauthconn_token
    WHEN {held("OLD")} BEGIN {add("-", "OLD")}; END""",
    f"""CREATE TRIGGER oauthconn_token_held_update
    AFTER UPDATE OF access_token, status, connection_id ON oauthconn_token
    WHEN {changed().replace("IS DISTINCT FROM", "IS NOT")} BEGIN
        {add("-", "OLD")} AND {held("OLD")};
        {add("+", "NEW")} AND {held("NEW")};
    END""",
]

BACKFILL = "oauthconn_held_grants_backfill"


def create_triggers(schema_editor) -> None:
    """The triggers of this migration (again, after a rebuild of the token table on SQLite)."""
    statements = {"postgresql": POSTGRESQL, "sqlite": SQLITE}[schema_editor.connection.vendor]
    for statement in statements:
        schema_editor.execute(statement)


def count_grants(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor not in TRIGGERS:
        return
    with transaction.atomic(using=schema_editor.connection.alias):
        if vendor == "postgresql":
            schema_editor.execute("LOCK TABLE oauthconn_token IN SHARE MODE")
        create_triggers(schema_editor)
        schema_editor.execute(
            f"CREATE TEMPORARY TABLE {BACKFILL} AS SELECT connection_id, COUNT(*) AS n"
            f" FROM oauthconn_token WHERE {held('')} GROUP BY connection_id"
        )
    if vendor == "postgresql":
        schema_editor.execute(
            f"UPDATE oauthconn_connection SET held_grants = held_grants + b.n"
            f" FROM {BACKFILL} b WHERE oauthconn_connection.id = b.connection_id"
        )
    else:
        schema_editor.execute(
            f"UPDATE oauthconn_connection SET held_grants = held_grants"
            f" + (SELECT n FROM {BACKFILL} b WHERE b.connection_id = oauthconn_connection.id)"
            f" WHERE id IN (SELECT connection_id FROM {BACKFILL})"
        )
    schema_editor.execute(f"DROP TABLE {BACKFILL}")


def drop_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for trigger in TRIGGERS.get(vendor, []):
        on = " ON oauthconn_token" if vendor == "postgresql" else ""
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {trigger}{on}")
    if vendor == "postgresql":
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("oauthconn", "0018_scale_connection_name_search"),
    ]

    operations = [
        migrations.AddField(
            model_name="connection",
            name="held_grants",
            field=models.IntegerField(db_default=0, default=0, editable=False, serialize=False),
        ),
        migrations.RunPython(count_grants, drop_triggers, elidable=False),
        AddIndexConcurrentlyOnPostgres(
            model_name="connection",
            index=models.Index(
                condition=models.Q(("held_grants", 0)),
                fields=["name"],
                name="oauthconn_connection_unheld",
            ),
        ),
    ]

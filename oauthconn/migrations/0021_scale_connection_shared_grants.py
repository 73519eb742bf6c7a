"""The API's "not connected" filter at a million connections: a kept count and three indexes.

``GET /connections/?status=not_connected`` lists the connections where the caller has no
grant row: a shared connection without its shared grant, a per-user connection without the
caller's own, and every per-owner connection (the staff's list shows no team's grant). Asked
as one anti-join it read both tables whole to prove that nothing matched (0.7–1.0 s at a
million connections). This migration gives each part an index:

- ``Connection.shared_grants``: how many shared grants (token rows with no owner) the
  connection has, 0 or 1 by ``oauthconn_token_one_shared``, kept by triggers on the token
  table exactly as ``held_grants`` is (``_kept_counts.KeptCount``; the same caution about
  SQLite rebuilding the token table applies). A partial index on the name of the non-per-user
  connections without one, or per owner, answers the shared part from the index alone.
- A partial index of the per-user connections' ids and an index of the grants by
  ``(owner, connection)``: the per-user part is then an anti-join of two index-only scans,
  as long as the caller's grants, never a walk of every connection.

The indexes are built concurrently on PostgreSQL (so the migration is not atomic). The
token table's existing index on ``owner`` alone is now a prefix of the new one; it stays,
because dropping it would make SQLite rebuild the token table and drop its triggers.
"""

from importlib import import_module

from django.db import migrations, models

from oauthconn.migrations._kept_counts import KeptCount
from oauthconn.migrations._operations import AddIndexConcurrentlyOnPostgres


def shared(prefix: str) -> str:
    """SQL: the grant (columns prefixed ``OLD.``, ``NEW.`` or nothing) is a shared one."""
    return f"({prefix}owner_id IS NULL AND {prefix}owner_key = '')"


SHARED = KeptCount("shared_grants", "shared", shared, watched=("owner_id", "owner_key"))
TRIGGERS = SHARED.triggers
HELD = import_module("oauthconn.migrations.0019_scale_connection_held_grants").HELD


def drop_held_triggers(apps, schema_editor):
    """SQLite rebuilds the connection table to add (or remove) a column with a default, and
    the rebuild fails while the token table has triggers that update it (0019's): they are
    dropped around it and created again right after (on a single-writer database)."""
    if schema_editor.connection.vendor == "sqlite":
        HELD.uninstall(apps, schema_editor)


def create_held_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        HELD.create_triggers(schema_editor)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("oauthconn", "0020_lookup_grant_versions")]

    operations = [
        migrations.RunPython(drop_held_triggers, create_held_triggers, elidable=False),
        migrations.AddField(
            model_name="connection",
            name="shared_grants",
            field=models.IntegerField(db_default=0, default=0, editable=False, serialize=False),
        ),
        migrations.RunPython(create_held_triggers, drop_held_triggers, elidable=False),
        migrations.RunPython(SHARED.install, SHARED.uninstall, elidable=False),
        AddIndexConcurrentlyOnPostgres(
            model_name="connection",
            index=models.Index(
                condition=models.Q(("per_user", False))
                & (models.Q(("per_owner", True)) | models.Q(("shared_grants", 0))),
                fields=["name"],
                name="oauthconn_connection_unshared",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="connection",
            index=models.Index(
                condition=models.Q(("per_user", True)),
                fields=["id"],
                name="oauthconn_connection_per_user",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="token",
            index=models.Index(fields=["owner", "connection"], name="oauthconn_token_owner_conn"),
        ),
    ]

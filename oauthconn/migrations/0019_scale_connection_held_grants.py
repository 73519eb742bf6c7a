"""Count each connection's held grants in the database, for the "not connected" filter.

"Not connected" means no grant of the connection holds anything: no access token, and no
failing, needs-reauthorization or revoked state. Asked as an anti-join it must read both
tables to prove that none of a million connections qualifies (0.5–0.9 s). This migration adds
``Connection.held_grants`` and keeps it in the database: a trigger on the token table adds one
when a grant starts holding something and takes one away when it stops (insert, update of
``access_token``, ``status`` or ``connection_id``, delete), so no write path can forget it:
not the ORM, not ``QuerySet.update()``, not raw SQL, not ``COPY``. The filter then reads a
partial index of the connections whose count is zero.

The triggers and the backfill are ``oauthconn.migrations._kept_counts.KeptCount``, whose
docstring says how they behave on PostgreSQL, SQLite and other databases, and how the backfill
stays consistent under concurrent writes (migration 0021 keeps a second count the same way).
The index is built concurrently. Caution for later migrations on SQLite (see ``_kept_counts``):
a rebuild of the token table drops these triggers (create them again with
``HELD.create_triggers``; ``tests/test_held_grants.py`` fails if they are gone), and a rebuild
of the connection table fails while they exist (migration 0021 drops them around its own).
"""

from django.db import migrations, models

from oauthconn.migrations._kept_counts import KeptCount
from oauthconn.migrations._operations import AddIndexConcurrentlyOnPostgres


def held(prefix: str) -> str:
    """SQL: the grant (columns prefixed ``OLD.``, ``NEW.`` or nothing) holds something."""
    return (
        f"({prefix}access_token IS NOT NULL"
        f" OR {prefix}status IN ('failing', 'needs_reauth', 'revoked'))"
    )


HELD = KeptCount("held_grants", "held", held, watched=("access_token", "status"))
TRIGGERS = HELD.triggers


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
        migrations.RunPython(HELD.install, HELD.uninstall, elidable=False),
        AddIndexConcurrentlyOnPostgres(
            model_name="connection",
            index=models.Index(
                condition=models.Q(("held_grants", 0)),
                fields=["name"],
                name="oauthconn_connection_unheld",
            ),
        ),
    ]

"""Drop the token table's index on ``owner`` alone: ``(owner, connection)`` (0021) leads with it.

Besides being redundant, it misled PostgreSQL. The connection page lists a per-user
connection's first grants in owner order; with the owner's own index present the planner
walked it and filtered on the connection, which read every grant of users who come first
(165 ms for a connection of 100,000 grants in a million; 0.3 ms along the unique
``(connection, owner)`` index it uses now).

Dropped concurrently on PostgreSQL (so the migration is not atomic); SQLite drops the index
without rebuilding the table.
"""

from django.conf import settings
from django.db import migrations, models

from oauthconn.migrations._operations import DropForeignKeyIndex


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("oauthconn", "0022_grant_counts_per_statement"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        DropForeignKeyIndex(
            model_name="token",
            name="owner",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=models.deletion.CASCADE,
                related_name="oauthconn_tokens",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]

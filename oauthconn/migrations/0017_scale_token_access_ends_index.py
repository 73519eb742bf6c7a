"""Index when an access token without a refresh token ends; statistics for "last used".

- ``oauthconn_token_access_ends``: the "expiring" status (admin filter, API), the health
  command and the health overview ask for ``refresh_token IS NULL AND expires_at <= soon``.
  The ``(status, expires_at)`` index matches nearly every active grant there (access tokens
  live for hours, "soon" is days), so PostgreSQL read the whole token table; this partial
  index holds only the grants that have no refresh token. Built concurrently on PostgreSQL
  (see oauthconn.migrations._operations), so writes to the token table go on meanwhile.
- ``oauthconn_token_last_used_stats`` (PostgreSQL 14+): the planner ignores the statistics
  of a partial expression index (0010's), so it guessed that a third of all grants were idle
  and joined every connection for the due-token query. Extended statistics on the same
  expression give it the real distribution (after the next ANALYZE or autovacuum).
  CREATE STATISTICS takes a brief SHARE UPDATE EXCLUSIVE lock: reads and writes go on.
"""

from django.db import migrations, models

from oauthconn.migrations._operations import AddIndexConcurrentlyOnPostgres

STATISTICS = "oauthconn_token_last_used_stats"


def create_statistics(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or connection.pg_version < 140000:
        return
    schema_editor.execute(
        f"CREATE STATISTICS IF NOT EXISTS {STATISTICS} "
        "ON (COALESCE(refreshed_at, authorized_at)) FROM oauthconn_token"
    )


def drop_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("oauthconn", "0016_grant_base_values"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="token",
            index=models.Index(
                fields=["expires_at"],
                condition=models.Q(refresh_token__isnull=True),
                name="oauthconn_token_access_ends",
            ),
        ),
        migrations.RunPython(create_statistics, drop_statistics, elidable=False),
    ]

"""A trigram index for the connection list's search box (PostgreSQL only).

The admin searches connections by any part of their name (``name__icontains``: ``UPPER(name)
LIKE '%…%'``), which no B-tree can answer: at a million connections every search read the
whole table, twice (the count, then the page). A GIN index of the name's trigrams
(``pg_trgm``, shipped with PostgreSQL) answers it for any search of three characters or more.

Built concurrently (this migration is non-atomic), so connections can be written meanwhile.
``pg_trgm`` is a trusted extension (PostgreSQL 13+): a role that may create objects in the
database may install it. Where it cannot be installed the index is skipped with a warning,
and the search box works as before, by reading the table. Other databases: nothing to do.
The index is not part of Django's model state (Django cannot declare it without
django.contrib.postgres), so it lives only in this migration.
"""

import warnings

from django.db import DatabaseError, migrations

INDEX = "oauthconn_connection_name_trgm"


def create_index(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    try:
        schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError as err:
        warnings.warn(
            f"oauthconn: pg_trgm could not be installed ({err}); the connection search "
            f"reads the whole table. Run CREATE EXTENSION pg_trgm as a superuser and "
            f"migrate oauthconn 0017, then 0018 again, to add the index {INDEX}.",
            stacklevel=1,
        )
        return
    # The expression Django's icontains compares on PostgreSQL, so the planner matches it.
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON oauthconn_connection "
        "USING gin ((UPPER(name::text)) gin_trgm_ops)"
    )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("oauthconn", "0017_scale_token_access_ends_index"),
    ]

    operations = [
        migrations.RunPython(create_index, drop_index, elidable=False),
    ]

"""Migration operations shared by oauthconn's migrations (the loader skips ``_`` modules).

Indexes on the tables that grow (tokens, events, connections) are built with CREATE INDEX
CONCURRENTLY on PostgreSQL, which does not block writes while it builds but cannot run in a
transaction: a migration using this holds only that one operation and sets ``atomic = False``.
Other databases get a plain CREATE INDEX (SQLite and MySQL have no concurrent build). The
choice is made per connection when the migration runs, so django.contrib.postgres (which
needs psycopg) is imported only on PostgreSQL.
"""

from django.db import migrations


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    """``AddIndex`` that builds (and drops) the index concurrently on PostgreSQL."""

    def _concurrent(self, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return None
        from django.contrib.postgres.operations import AddIndexConcurrently

        return AddIndexConcurrently(self.model_name, self.index)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        concurrent = self._concurrent(schema_editor)
        target = concurrent or super()
        target.database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        concurrent = self._concurrent(schema_editor)
        target = concurrent or super()
        target.database_backwards(app_label, schema_editor, from_state, to_state)


class DropForeignKeyIndex(migrations.AlterField):
    """``AlterField`` to ``db_index=False`` on a foreign key that another index now leads
    with: drops only the key's own index, concurrently on PostgreSQL (so the migration sets
    ``atomic = False``). Django's ``AlterField`` would rebuild the whole table on SQLite,
    dropping its triggers. Other databases get Django's ``AlterField``."""

    VENDORS = ("postgresql", "sqlite")

    def _index_sql(self, app_label, schema_editor, state, create: bool) -> str:
        model = state.apps.get_model(app_label, self.model_name)
        column = model._meta.get_field(self.name).column
        table = model._meta.db_table
        # The name Django gave the index when it created the key (its own naming scheme).
        name = schema_editor._create_index_name(table, [column], suffix="")
        concurrently = " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""
        quote = schema_editor.quote_name
        if create:
            return (
                f"CREATE INDEX{concurrently} IF NOT EXISTS {quote(name)}"
                f" ON {quote(table)} ({quote(column)})"
            )
        return f"DROP INDEX{concurrently} IF EXISTS {quote(name)}"

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor not in self.VENDORS:
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        schema_editor.execute(self._index_sql(app_label, schema_editor, from_state, create=False))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor not in self.VENDORS:
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        schema_editor.execute(self._index_sql(app_label, schema_editor, to_state, create=True))

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

"""Index Event(kind, created_at) for the health overview's per-kind, per-hour counts.

Event is the table that grows (millions of rows). On PostgreSQL the index is built with
CREATE INDEX CONCURRENTLY, which does not block writes while it builds but cannot run in a
transaction, hence ``atomic = False`` and a migration holding only this one operation. Other
databases get a plain CREATE INDEX (SQLite and MySQL have no concurrent build). The choice
is made per connection when the migration runs, so one migration file serves every engine
and django.contrib.postgres (which needs psycopg) is imported only on PostgreSQL.
"""

from django.db import migrations, models


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


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("oauthconn", "0002_pending_revocation_and_used_attempts"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="event",
            index=models.Index(fields=["kind", "created_at"], name="oauthconn_event_kind_time"),
        ),
    ]

"""Index Event(kind, created_at) for the health overview's per-kind, per-hour counts.

Event is the table that grows (millions of rows). On PostgreSQL the index is built with
CREATE INDEX CONCURRENTLY, which does not block writes while it builds but cannot run in a
transaction, hence ``atomic = False`` and a migration holding only this one operation. Other
databases get a plain CREATE INDEX (SQLite and MySQL have no concurrent build). The choice
is made per connection when the migration runs (oauthconn.migrations._operations, shared with
the 0005-0007 scale migrations), so one migration file serves every engine.
"""

from django.db import migrations, models

from oauthconn.migrations._operations import AddIndexConcurrentlyOnPostgres


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

"""Keep ``held_grants`` and ``shared_grants`` per statement on PostgreSQL, not per row.

Migrations 0019 and 0021 keep the two counts with row triggers. One statement that changes
many grants of one connection (a per-user connection's grants dropped after its client
changed, the connection deleted, a bulk import) then updated that connection's row once per
grant in one transaction: quadratic in PostgreSQL, 8 s for 4,000 grants. This migration
swaps them for statement-level triggers (``_kept_counts.KeptPerStatement``) that update each
connection once per statement. SQLite keeps its row triggers (it updates in place).

The function's ``UPDATE`` of a connection is planned afresh each time (an ``EXECUTE``): a
plan kept from when the connection table was small would scan all of it for every connection
a statement moves.

The swap is one short transaction; it holds an exclusive lock on the token table only for
the DDL, and the counts need no recount.
"""

from importlib import import_module

from django.db import migrations

from oauthconn.migrations._kept_counts import KeptPerStatement

HELD = import_module("oauthconn.migrations.0019_scale_connection_held_grants").HELD
SHARED = import_module("oauthconn.migrations.0021_scale_connection_shared_grants").SHARED
COUNTS = KeptPerStatement([HELD, SHARED])
#: The triggers on the token table that keep both counts now, by database.
TRIGGERS = COUNTS.triggers


class Migration(migrations.Migration):
    dependencies = [("oauthconn", "0021_scale_connection_shared_grants")]

    operations = [migrations.RunPython(COUNTS.install, COUNTS.uninstall, elidable=False)]

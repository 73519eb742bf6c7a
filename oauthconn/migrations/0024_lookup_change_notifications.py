"""PostgreSQL: NOTIFY ``oauthconn_changes`` when a row ``get_connection`` reads changes.

With ``OAUTHCONN["LISTEN_FOR_CHANGES"]`` a process LISTENs on that channel and serves a row it
read before without asking the database until a notification names it (flows/change_feed.py).
The triggers are installed whatever the setting: a process that listens must hear every
writer, whichever process, host or tool it is (the ORM, ``update()``, raw SQL, ``COPY``).

The payloads: ``c<id>`` (a connection, or one of its grants), ``p<id>`` (a provider), ``*``
(a statement moved grants of more than :data:`BULK` connections, or a table was truncated:
listeners forget all).

What does not notify, so that the hot paths take no part in NOTIFY's commit-time lock:

- a grant's renewal: only :data:`RENEWED` columns change. A process may keep using an access
  token another process replaced, as a kept connection object does; it reads the row again
  when the token it holds is due, or after a 401;
- the proactive refresh's lease (``lease_until``);
- the connection counts that the triggers of 0019/0021/0022 keep (their grants' inserts and
  deletes notify already).

Every other column of the token and connection rows is compared (``IS DISTINCT FROM``); a test
fails when a later migration adds a column that these lists do not name.
"""

from django.db import migrations

CHANNEL = "oauthconn_changes"
#: a statement over the grants of more connections than this sends ``*``
BULK = 100
#: token columns that a renewal or a lease writes: changing only these notifies nobody
RENEWED = (
    "access_token",
    "refresh_token",
    "id_token",
    "expires_at",
    "lifetime",
    "refresh_expires_at",
    "refreshed_at",
    "updated_at",
    "lease_until",
)
#: connection columns kept by triggers (their grants' inserts and deletes notify)
COUNTED = ("held_grants", "shared_grants")

ROW_FUNCTION = "oauthconn_notify_row"
GRANTS_FUNCTION = "oauthconn_notify_grants"
ALL_FUNCTION = "oauthconn_notify_all"
#: trigger -> (table, timing and events, function and its arguments)
TRIGGERS = {
    "oauthconn_provider_changed": (
        "oauthconn_provider",
        "AFTER UPDATE OR DELETE ON {table} FOR EACH ROW",
        f"{ROW_FUNCTION}('p')",
    ),
    "oauthconn_connection_changed": (
        "oauthconn_connection",
        "AFTER UPDATE ON {table} FOR EACH ROW WHEN ({changed})",
        f"{ROW_FUNCTION}('c')",
    ),
    "oauthconn_connection_deleted": (
        "oauthconn_connection",
        "AFTER DELETE ON {table} FOR EACH ROW",
        f"{ROW_FUNCTION}('c')",
    ),
    "oauthconn_token_changed": (
        "oauthconn_token",
        "AFTER UPDATE ON {table} FOR EACH ROW WHEN ({changed})",
        f"{ROW_FUNCTION}('c')",
    ),
    "oauthconn_token_inserted": (
        "oauthconn_token",
        "AFTER INSERT ON {table} REFERENCING NEW TABLE AS moved FOR EACH STATEMENT",
        f"{GRANTS_FUNCTION}()",
    ),
    "oauthconn_token_deleted": (
        "oauthconn_token",
        "AFTER DELETE ON {table} REFERENCING OLD TABLE AS moved FOR EACH STATEMENT",
        f"{GRANTS_FUNCTION}()",
    ),
    **{
        f"{table}_truncated": (
            table,
            "AFTER TRUNCATE ON {table} FOR EACH STATEMENT",
            f"{ALL_FUNCTION}()",
        )
        for table in ("oauthconn_provider", "oauthconn_connection", "oauthconn_token")
    },
}
#: the columns compared by a trigger's WHEN are all but these
UNWATCHED = {"oauthconn_connection": COUNTED, "oauthconn_token": RENEWED}


def _changed(columns):
    old = ", ".join(f"OLD.{c}" for c in columns)
    new = ", ".join(f"NEW.{c}" for c in columns)
    return f"ROW({old}) IS DISTINCT FROM ROW({new})"


def _watched_columns(apps, schema_editor, table):
    models = {"oauthconn_connection": "Connection", "oauthconn_token": "Token"}
    model = apps.get_model("oauthconn", models[table])
    qn = schema_editor.quote_name
    columns = [field.column for field in model._meta.concrete_fields]
    return [qn(c) for c in columns if c not in UNWATCHED[table]]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # One row function for the three tables: TG_ARGV[0] is the payload's letter, the key is
    # the row's connection (a grant) or its own id. Both the old and the new row are named,
    # in case an update moved a grant to another connection (NOTIFY drops repeats).
    schema_editor.execute(
        f"CREATE OR REPLACE FUNCTION {ROW_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$"
        " DECLARE key text := CASE TG_TABLE_NAME WHEN 'oauthconn_token' THEN 'connection_id'"
        " ELSE 'id' END; BEGIN"
        " IF TG_OP <> 'INSERT' THEN"
        f" PERFORM pg_notify('{CHANNEL}', TG_ARGV[0] || (to_jsonb(OLD) ->> key)); END IF;"
        " IF TG_OP <> 'DELETE' THEN"
        f" PERFORM pg_notify('{CHANNEL}', TG_ARGV[0] || (to_jsonb(NEW) ->> key)); END IF;"
        " RETURN NULL; END $$"
    )
    schema_editor.execute(
        f"CREATE OR REPLACE FUNCTION {GRANTS_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN"
        f" IF (SELECT count(DISTINCT connection_id) FROM moved) > {BULK} THEN"
        f" PERFORM pg_notify('{CHANNEL}', '*');"
        " ELSE"
        f" PERFORM pg_notify('{CHANNEL}', 'c' || connection_id)"
        " FROM (SELECT DISTINCT connection_id FROM moved) AS grants;"
        " END IF; RETURN NULL; END $$"
    )
    schema_editor.execute(
        f"CREATE OR REPLACE FUNCTION {ALL_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN PERFORM pg_notify('{CHANNEL}', '*'); RETURN NULL; END $$"
    )
    for name, (table, when, function) in TRIGGERS.items():
        changed = ""
        if table in UNWATCHED:
            changed = _changed(_watched_columns(apps, schema_editor, table))
        schema_editor.execute(
            f"CREATE TRIGGER {name} {when.format(table=table, changed=changed)}"
            f" EXECUTE FUNCTION {function}"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, (table, _, _) in TRIGGERS.items():
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    for function in (ROW_FUNCTION, GRANTS_FUNCTION, ALL_FUNCTION):
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {function}()")


class Migration(migrations.Migration):
    dependencies = [("oauthconn", "0023_token_owner_index_dropped")]

    operations = [migrations.RunPython(create, drop, elidable=False)]

"""PostgreSQL: ``get_connection``'s version check as three PL/pgSQL functions.

Every ``get_connection`` call asks PostgreSQL whether the connection's, its provider's and
the grant's tuples are the ones this process read before (``flows/lookup.py``). Executing
that join takes tens of microseconds; planning it (three tables, the token table's eleven
indexes a third of that) took several times that, on every call, because Django sends each
statement to be planned afresh. A PL/pgSQL function keeps the plan of its query for
the session (the caller's statement, a call of the function, is planned in microseconds).
Unlike the prepared statements of psycopg (``prepare_threshold``), nothing is named on the
client's side, so a transaction-pooling PgBouncer needs no support for them.

The functions return what the join returned: each tuple's ``xmin`` and ``ctid`` as text,
with the token's NULL when the owner has no row. They are ``STABLE`` (they read, in the
caller's snapshot, and write nothing). LANGUAGE sql would not do: a simple SQL function is
inlined into the calling statement and planned with it every time.

Other databases get nothing: SQLite's lookup checks ``PRAGMA data_version`` instead, and the
others read the whole row.
"""

from django.db import migrations

FUNCTIONS = {
    # name: (the owner's parameter, or None; the join's condition on the grant's owner)
    "oauthconn_grant_versions_shared": (None, "t.owner_id IS NULL AND t.owner_key = ''"),
    "oauthconn_grant_versions_owned": ("owner_id", "t.owner_id = wanted_owner"),
    "oauthconn_grant_versions_keyed": (
        "owner_key",
        "t.owner_id IS NULL AND t.owner_key = wanted_owner",
    ),
}


def _owner_type(apps, schema_editor, column):
    """The SQL type of the token's ``column`` (the user model's key may be an int or a UUID)."""
    if column == "owner_key":
        return "text"
    field = apps.get_model("oauthconn", "Token")._meta.get_field("owner")
    return field.target_field.rel_db_type(schema_editor.connection)


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, (owner, condition) in FUNCTIONS.items():
        owner_param = f"wanted_owner {_owner_type(apps, schema_editor, owner)}, " if owner else ""
        schema_editor.execute(
            f"CREATE OR REPLACE FUNCTION {name}({owner_param}wanted_slug text)"
            " RETURNS TABLE (connection_xmin text, connection_ctid text, provider_xmin text,"
            " provider_ctid text, token_xmin text, token_ctid text)"
            " LANGUAGE plpgsql STABLE AS $$ BEGIN RETURN QUERY"
            " SELECT c.xmin::text, c.ctid::text, p.xmin::text, p.ctid::text, t.xmin::text,"
            " t.ctid::text FROM oauthconn_connection c"
            " INNER JOIN oauthconn_provider p ON (c.provider_id = p.id)"
            f" LEFT OUTER JOIN oauthconn_token t ON (t.connection_id = c.id AND {condition})"
            " WHERE c.slug = wanted_slug; END $$"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, (owner, _) in FUNCTIONS.items():
        owner_param = f"{_owner_type(apps, schema_editor, owner)}, " if owner else ""
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}({owner_param}text)")


class Migration(migrations.Migration):
    dependencies = [("oauthconn", "0019_scale_connection_held_grants")]

    operations = [migrations.RunPython(create, drop, elidable=False)]

"""The PostgreSQL test database, for connections outside Django's: another process, a raw
psycopg connection. Both carry everything Django connects with (password, sslmode, OPTIONS),
so the tier runs against a server that asks for them."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.db import connection as db

#: what Django passes to ``psycopg.connect`` that is not a libpq parameter
NOT_LIBPQ = ("cursor_factory", "context", "prepare_threshold")


def dsn() -> str:
    """A libpq connection string for the test database (psycopg 3 or 2, as Django uses)."""
    params = db.get_connection_params()
    params = {k: v for k, v in params.items() if k not in NOT_LIBPQ}
    if db.Database.__name__ == "psycopg2":
        from psycopg2.extensions import make_dsn

        return make_dsn(**params)
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**params)


def database_url(url: str) -> str:
    """``url`` (the tier's ``DATABASE_URL``) pointed at the test database Django created."""
    return urlsplit(url)._replace(path=f"/{db.settings_dict['NAME']}").geturl()

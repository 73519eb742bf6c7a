"""Settings for the benchmarks: the demo project's settings with two databases.

``default`` is the client site's database (oauthconn's tables): ``DATABASE_URL`` when set,
else a SQLite file in ``BENCH_DIR``. ``authserver`` is the authorization server's own
database (django-oauth-toolkit's tables), always a separate SQLite file, as a provider is a
different system. The authorization server process runs with ``BENCH_ROLE=authserver``, where
its database is ``default``.
"""

from __future__ import annotations

import os
from pathlib import Path

from project.settings import *  # noqa: F403
from project.settings import BASE_DIR, OAUTHCONN, env

BENCH_DIR = Path(os.environ.get("BENCH_DIR", BASE_DIR / "benchmarks" / "results"))
ROLE = os.environ.get("BENCH_ROLE", "client")


def _sqlite(name: str) -> dict:
    # WAL and IMMEDIATE transactions: concurrent writers queue on the busy timeout instead of
    # failing with "database is locked" when a read transaction upgrades to a write.
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(BENCH_DIR / name),
        "OPTIONS": {
            "timeout": 60,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


if ROLE == "authserver":
    DATABASES = {"default": _sqlite("authserver.sqlite3")}
else:
    client_db = (
        env.db("DATABASE_URL") if os.environ.get("DATABASE_URL") else _sqlite("bench.sqlite3")
    )
    DATABASES = {"default": client_db, "authserver": _sqlite("authserver.sqlite3")}

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "benchmarks.urls"
MIDDLEWARE = ["benchmarks.authserver.CountingMiddleware", *MIDDLEWARE]  # noqa: F405
# Staff users log in with force_login; no password is hashed in the measured paths.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

OAUTHCONN = {
    **OAUTHCONN,
    # A fixed key generated for the benchmarks; it guards nothing real.
    "ENCRYPTION_KEYS": ["Vq3pD0Yb3cTq8m1m8n0mX0aQy0o8kq6fS3mQ0f0y0Wc="],
    "REDIRECT_BASE_URL": "http://127.0.0.1:8000",
    "ALLOW_INSECURE_LOOPBACK": True,
}

# Loopback http is the point here (oauthconn.W001 warns about it when DEBUG is off).
SILENCED_SYSTEM_CHECKS = ["oauthconn.W001"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {
        "oauthconn": {"handlers": ["null"], "level": "WARNING", "propagate": False},
        "django.server": {"handlers": ["null"], "level": "ERROR", "propagate": False},
        "django.request": {"handlers": ["null"], "level": "ERROR", "propagate": False},
    },
}

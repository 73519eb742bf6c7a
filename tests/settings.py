"""Test settings: the demo project's settings, a fixed key, fast hashing."""

import os
import tempfile
from pathlib import Path

from project.settings import *  # noqa: F403
from project.settings import OAUTHCONN, env

# DATABASE_URL selects the engine (the PostgreSQL tier); SQLite otherwise, in a file as the
# demo uses: its locking is what the demo meets, unlike the shared in-memory database that
# Django's test runner would hand the live server's thread.
DATABASES = {"default": env.db("DATABASE_URL", default="sqlite://:memory:")}
if os.environ.get("PG_PREPARED") and DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # The prepared-statement tier: server-side binding and psycopg's prepared statements,
    # which docs/operations.md recommends where no transaction-pooling proxy is in the way.
    DATABASES["default"]["OPTIONS"] = {"server_side_binding": True, "prepare_threshold": 5}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # One file per run (parallel runs do not collide); child processes inherit its name.
    default_file = Path(tempfile.gettempdir()) / f"oauthconn-test-{os.getpid()}.sqlite3"
    os.environ.setdefault("SQLITE_TEST_FILE", str(default_file))
    DATABASES["default"]["TEST"] = {"NAME": os.environ["SQLITE_TEST_FILE"]}
    if DATABASES["default"]["NAME"] in ("", ":memory:"):
        # NAME must be the file too, not only TEST NAME: pytest-django's live_server is
        # session-scoped, so in a run whose first test uses it (one file, a -k selection) it
        # starts before django_db_setup, sees NAME ':memory:' and hands the test thread's
        # connection to the server thread; once the file database replaces it, both threads
        # share one sqlite3 handle ("Cannot operate on a closed database", segfaults).
        DATABASES["default"]["NAME"] = os.environ["SQLITE_TEST_FILE"]

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]

OAUTHCONN = {
    **OAUTHCONN,
    # A fixed test key: generated once for this suite, it guards nothing real.
    "ENCRYPTION_KEYS": ["lWZ0PwLAt7hgZK5wbLp2y0Xc3L2Fxt1vg1l8Ya7oFb0="],
    "REDIRECT_BASE_URL": "http://testserver",
    "ALLOW_INSECURE_LOOPBACK": True,
    # Per-owner grants (tests/test_team_grants.py): a team model of the test site.
    "OWNER_MODEL": "teams.Team",
    "OWNER_RESOLVER": "tests.teams.models.teams_of",
}

MIDDLEWARE = ["tests.recorder.RecordingMiddleware", *MIDDLEWARE]  # noqa: F405

# The REST API is tested with token authentication too (tests/test_api_live.py, schemathesis).
INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework.authtoken", "tests.teams"]  # noqa: F405
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
}

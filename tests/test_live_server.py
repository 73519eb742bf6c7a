"""The live server's thread uses its own database connection, however the suite is cut up.

pytest-django's ``live_server`` is session-scoped: when the first test of a run uses it (one
file run alone, a ``-k`` selection) it starts before ``django_db_setup``, and decides then
whether to hand the test thread's connection to the server thread (it does for an in-memory
SQLite database). Sharing one sqlite3 handle across two threads crashed about one run in
three. Which test starts it first depends on the selection, so the check runs in a fresh
pytest process where it is the first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from django.db import connection
from oauth2_provider.models import Application

ROOT = Path(__file__).resolve().parent.parent


def test_the_server_thread_gets_no_shared_connection(live_server):
    assert live_server.thread.connections_override == {}
    assert connection.vendor != "sqlite" or not connection.is_in_memory_db()
    # A row the test thread committed is read by the server thread through its own connection.
    Application.objects.create(
        name="probe",
        client_id="probe",
        client_secret="probe-secret",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        algorithm="",
    )
    response = httpx.post(
        f"{live_server.url}/demo-oauth/token/",
        data={"grant_type": "client_credentials"},
        auth=("probe", "probe-secret"),
    )
    assert response.status_code == 200, response.text


def test_a_run_whose_first_test_starts_the_live_server_shares_no_connection():
    # The default SQLite settings (only they have an in-memory database to share), in a
    # database file of the child's own, not this run's.
    env = {k: v for k, v in os.environ.items() if k not in ("SQLITE_TEST_FILE", "DATABASE_URL")}
    node = f"{Path(__file__).relative_to(ROOT)}::test_the_server_thread_gets_no_shared_connection"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", node, "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout

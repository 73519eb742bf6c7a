"""Cheap ``get_connection`` (issue 11): the shared connection pool and the one-query lookup.

The API is a real HTTP/1.1 server that keeps connections alive and counts the TCP connections
it accepts (``ScriptedServer(keep_alive=True)``); tokens are stored as after authorization.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection as db
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from oauthconn import get_connection
from oauthconn.exceptions import NotConnected
from oauthconn.models import Connection, Provider, Token, TokenStatus
from tests.scripted_server import Reply, ScriptedServer

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parent.parent


def echo(request) -> Reply:
    """The API answers with the bearer token it received."""
    return Reply(body={"authorization": request.headers.get("Authorization", "")})


@pytest.fixture
def api():
    with ScriptedServer(keep_alive=True) as server:
        server.default("/api/me", echo)
        yield server


@pytest.fixture
def grant(db):
    """``make(slug, token)``: a shared connection to ``api`` holding a valid access token."""
    provider = Provider.objects.create(
        slug="p", name="P", token_endpoint="http://127.0.0.1:9/token"
    )

    def make(slug: str, token: str, base_url: str) -> Connection:
        connection = Connection.objects.create(
            slug=slug, name=slug, provider=provider, client_id=slug, api_base_url=base_url
        )
        expires = timezone.now() + timedelta(hours=1)
        Token.objects.create(connection=connection, access_token=token, expires_at=expires)
        return connection

    return make


def said(response) -> str:
    assert response.status_code == 200
    return response.json()["authorization"]


# --- the pool ---------------------------------------------------------------------------------


def test_consecutive_get_connection_calls_share_one_tcp_connection(api, grant):
    grant("crm", "at-crm", api.url("/api/"))
    for _ in range(5):
        assert said(get_connection("crm").get("me")) == "Bearer at-crm"
    with get_connection("crm").client() as http:
        assert said(http.get("me")) == "Bearer at-crm"
    assert api.accepted == 1


def test_threads_on_one_pool_each_send_their_own_connections_token(api, grant):
    tokens = {"alpha": "at-alpha", "beta": "at-beta"}
    for slug, token in tokens.items():
        grant(slug, token, api.url("/api/"))
    mixed: list[tuple[str, str]] = []

    def work(slug: str) -> None:
        try:
            for _ in range(20):
                seen = said(get_connection(slug).get("me"))
                if seen != f"Bearer {tokens[slug]}":
                    mixed.append((slug, seen))
        finally:
            db.close()

    threads = [threading.Thread(target=work, args=(s,)) for s in list(tokens) * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mixed == []
    assert len(api.requests) == 160
    assert api.accepted <= len(threads)  # sockets reused, never one per call


def test_async_clients_share_a_pool_per_event_loop(api, grant):
    grant("crm", "at-crm", api.url("/api/"))
    crm = get_connection("crm")

    async def twice() -> list[str]:
        seen = []
        for _ in range(2):
            async with crm.async_client() as http:
                seen.append(said(await http.get("me")))
        return seen

    assert asyncio.run(twice()) == ["Bearer at-crm"] * 2
    assert api.accepted == 1  # the second client of the loop reused the first's connection
    assert asyncio.run(twice()) == ["Bearer at-crm"] * 2
    assert api.accepted == 2  # a new loop, a new pool: sockets never cross loops


def test_a_changed_timeout_or_ca_bundle_gets_a_new_pool(api, grant, settings, tmp_path):
    grant("crm", "at-crm", api.url("/api/"))
    said(get_connection("crm").get("me"))
    said(get_connection("crm").get("me"))
    assert api.accepted == 1
    settings.OAUTHCONN = {**settings.OAUTHCONN, "READ_TIMEOUT": 7.0}
    said(get_connection("crm").get("me"))
    assert api.accepted == 2
    bundle = tmp_path / "ca.pem"
    bundle.write_text(Path(__import__("certifi").where()).read_text())
    settings.OAUTHCONN = {**settings.OAUTHCONN, "CA_BUNDLE": str(bundle)}
    said(get_connection("crm").get("me"))
    assert api.accepted == 3


EXIT_SCRIPT = """
import atexit, os

def open_sockets_to(port):
    # Our process's TCP sockets (inodes behind /proc/self/fd) whose remote port is the API's.
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            mine.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    rows = [line.split() for line in open("/proc/net/tcp").read().splitlines()[1:]]
    return sum(
        1 for row in rows
        if int(row[2].rsplit(":", 1)[1], 16) == port and f"socket:[{row[9]}]" in mine
    )

# Registered before oauthconn is imported, so it runs after oauthconn's own exit hook.
atexit.register(lambda: print("open at exit:", open_sockets_to(PORT)))

import django
from django.conf import settings
settings.configure(OAUTHCONN={"ALLOW_INSECURE_LOOPBACK": True})
django.setup()
import httpx
from oauthconn.http import build_pooled_client, shared_client
with build_pooled_client(base_url=URL) as http:
    assert http.get("me").status_code == 200
assert shared_client(httpx.URL(URL)).get(URL + "me").status_code == 200
print("open while running:", open_sockets_to(PORT))
"""


def test_the_pool_is_closed_when_the_process_exits(api):
    script = f"URL = {api.url('/api/')!r}\nPORT = {api.port}\n" + textwrap.dedent(EXIT_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    # One kept-alive socket served both clients; the exit hook closed it.
    assert done.stdout.splitlines() == ["open while running: 1", "open at exit: 0"]
    assert "Traceback" not in done.stderr, done.stderr
    assert api.accepted == 1


# --- the lookup: one query, never stale -------------------------------------------------------


def test_an_unchanged_grant_costs_one_narrow_query_or_none(api, grant):
    connection = grant("crm", "at-crm", api.url("/api/"))
    assert get_connection("crm").access_token == "at-crm"  # fills the process's cache
    # PostgreSQL: one query for the three tuples' versions. SQLite: none, PRAGMA data_version
    # (on the sqlite3 connection, not a query Django sees) says nothing changed.
    with CaptureQueriesContext(db) as captured:
        assert get_connection("crm").access_token == "at-crm"
    assert len(captured) == (0 if db.vendor == "sqlite" else 1)
    if db.vendor == "postgresql":
        # the tuples' versions, from the PL/pgSQL function whose plan the session keeps
        assert captured[0]["sql"].startswith("SELECT * FROM oauthconn_grant_versions_shared(")
    # After a change, the whole row (PostgreSQL: once the versions said it changed).
    Token.objects.filter(connection=connection).update(access_token="at-2")
    with CaptureQueriesContext(db) as captured:
        assert get_connection("crm").access_token == "at-2"
    assert len(captured) == (1 if db.vendor == "sqlite" else 2)


def test_changes_written_behind_the_cache_are_seen_by_the_next_call(api, grant):
    connection = grant("crm", "at-crm", api.url("/api/"))
    assert get_connection("crm").access_token == "at-crm"  # cached from here on
    # update() bypasses save(), signals and updated_at, as another process or SQL would.
    Connection.objects.filter(pk=connection.pk).update(client_secret="new-secret")
    assert get_connection("crm").connection.client_secret.reveal() == "new-secret"
    Provider.objects.filter(slug="p").update(token_endpoint="https://as.example/token")
    assert get_connection("crm").connection.provider.token_endpoint == "https://as.example/token"
    Token.objects.filter(connection=connection).update(access_token="at-rotated")
    assert said(get_connection("crm").get("me")) == "Bearer at-rotated"


def test_a_moved_api_base_url_is_used_by_the_next_call(api, grant):
    connection = grant("crm", "at-crm", api.url("/api/"))
    said(get_connection("crm").get("me"))
    with ScriptedServer(keep_alive=True) as other:
        other.default("/v2/me", echo)
        Connection.objects.filter(pk=connection.pk).update(api_base_url=other.url("/v2/"))
        assert said(get_connection("crm").get("me")) == "Bearer at-crm"
        assert len(other.requests) == 1
    assert len(api.requests) == 1


def test_a_disconnect_is_seen_by_the_next_call(api, grant):
    connection = grant("crm", "at-crm", api.url("/api/"))
    assert get_connection("crm").access_token == "at-crm"
    Token.objects.filter(connection=connection).update(status=TokenStatus.REVOKED)
    with pytest.raises(NotConnected):
        get_connection("crm").access_token
    assert len(api.requests) == 0

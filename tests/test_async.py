"""Issue 12: async parity. ``aget_connection`` and the awaitable token and request methods,
in async views served by a real ASGI server (uvicorn, in a thread of this process) and in
event loops of the test, against django-oauth-toolkit over real HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connections
from django.utils import timezone
from oauth2_provider.models import AccessToken

from oauthconn import aget_connection, get_connection
from oauthconn.client import ConnectionAuth
from oauthconn.exceptions import (
    ConfigurationError,
    DeadlineExceeded,
    DisallowedResourceURL,
    ScopeNotAllowed,
)
from oauthconn.http import pool
from oauthconn.models import Connection, Provider, Token, TokenStatus
from tests.conftest import authorize
from tests.scripted_server import Reply
from tests.stall_server import Stall, StallServer
from tests.test_concurrency import (  # noqa: F401 - strict_provider is a fixture used below
    assert_one_refresh_and_everyone_served,
    expect_line,
    strict_provider,
    subprocess_env,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def django_async_safety(monkeypatch):
    """Django's check that refuses the sync ORM on an event loop, on: tests/test_browser.py
    turns it off for the whole session when collected (Playwright's sync API runs a loop in
    the test thread), which would hide the very bug these tests are about."""
    monkeypatch.delenv("DJANGO_ALLOW_ASYNC_UNSAFE", raising=False)


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coroutine`` in a new event loop, then release what that loop leaves behind: its
    HTTP pools, and the database connection of Django's thread-sensitive thread."""

    async def main() -> Any:
        try:
            return await coroutine
        finally:
            await pool.aclose_pools()
            await sync_to_async(connections.close_all)()

    return asyncio.run(main())


@dataclass
class AsgiServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join()


@pytest.fixture
def asgi_server(live_server, transactional_db, settings) -> Iterator[AsgiServer]:
    """The demo project's ASGI application (project/asgi.py) under uvicorn, with the
    test-only async views of tests/async_urls.py."""
    settings.ROOT_URLCONF = "tests.async_urls"
    from project.asgi import application

    config = uvicorn.Config(application, lifespan="on", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:  # start-up, not a measured wait
        assert thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    served = AsgiServer(f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread)
    yield served
    if thread.is_alive():
        served.stop()
    sock.close()


@pytest.fixture
def signed_in(staff_client) -> dict[str, str]:
    """The staff user's session cookie, for requests to the ASGI server."""
    return {"sessionid": staff_client.cookies["sessionid"].value}


@pytest.fixture
def connected(staff_client, make_connection, as_log) -> Connection:
    connection = make_connection(test_path="me/")
    authorize(staff_client, connection)
    as_log.clear()
    return connection


def expire(connection: Connection) -> None:
    Token.objects.filter(connection=connection).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def stored_access_token(connection: Connection) -> str:
    return Token.objects.get(connection=connection).access_token.reveal()


# --- async views under the ASGI server ---------------------------------------------------------


def test_the_demo_async_view_calls_the_api_through_aget_connection(
    asgi_server, connected, as_log, signed_in
):
    page = httpx.get(f"{asgi_server.url}/demo/async/crm/", cookies=signed_in)

    assert page.status_code == 200
    assert '<strong id="status">200</strong>' in page.text
    assert "{&quot;username&quot;: &quot;staff&quot;}" in page.text
    token = stored_access_token(connected)
    assert token not in page.text
    (api_call,) = as_log.to("/demo-api/me/")
    assert api_call.headers["Authorization"] == f"Bearer {token}"
    assert as_log.to("/demo-oauth/token/") == []


def test_the_demo_async_view_says_what_is_wrong(asgi_server, connected, as_log, signed_in):
    Token.objects.filter(connection=connected).update(status=TokenStatus.NEEDS_REAUTH)
    assert httpx.get(f"{asgi_server.url}/demo/async/nope/", cookies=signed_in).status_code == 404
    page = httpx.get(f"{asgi_server.url}/demo/async/crm/", cookies=signed_in)
    assert page.status_code == 502
    assert "needs to be authorized again.</p>" in page.text
    assert as_log.requests == []


def test_the_demo_async_view_uses_the_signed_in_users_grant(
    asgi_server, staff_client, make_connection, as_log
):
    mine = make_connection("mine", per_user=True, test_path="me/")
    authorize(staff_client, mine)
    url = f"{asgi_server.url}/demo/async/mine/?owner=me"
    session = {"sessionid": staff_client.cookies["sessionid"].value}

    page = httpx.get(url, cookies=session)

    assert page.status_code == 200
    assert "{&quot;username&quot;: &quot;staff&quot;}" in page.text
    (api_call,) = as_log.to("/demo-api/me/")
    assert api_call.headers["Authorization"] == f"Bearer {stored_access_token(mine)}"


def test_the_demo_async_view_is_for_signed_in_users_and_shared_connections_for_staff(
    asgi_server, connected, django_user_model, as_log
):
    url = f"{asgi_server.url}/demo/async/crm/"
    anonymous = httpx.get(url)
    assert anonymous.status_code == 302
    assert anonymous.headers["Location"] == "/accounts/login/?next=/demo/async/crm/"
    django_user_model.objects.create_user("alice", password="pw")
    browser = httpx.Client(base_url=asgi_server.url)
    with browser:
        login = browser.get("/accounts/login/")
        token = login.cookies["csrftoken"]
        data = {"username": "alice", "password": "pw", "csrfmiddlewaretoken": token}
        assert browser.post("/accounts/login/", data=data).status_code == 302
        assert browser.get("/demo/async/crm/").status_code == 403
    assert as_log.requests == []


def test_the_demo_home_page_links_the_async_view(client):
    assert 'href="/demo/async/demo/"' in client.get("/").content.decode()


def test_the_sync_lookup_in_an_async_view_raises_and_the_async_one_works(asgi_server, connected):
    """The bug of issue 12: get_connection() in an async view raises
    SynchronousOnlyOperation; aget_connection() in the same view works."""
    response = httpx.get(f"{asgi_server.url}/test-async/lookups/crm/")

    assert response.status_code == 200
    assert response.json() == {"sync": "SynchronousOnlyOperation", "async": {"username": "staff"}}


def test_an_expired_token_is_refreshed_once_for_an_async_view(asgi_server, connected, as_log):
    old = Token.objects.get(connection=connected)
    old_access, old_refresh = old.access_token.reveal(), old.refresh_token.reveal()
    expire(connected)

    served = httpx.get(f"{asgi_server.url}/test-async/token/crm/").json()["access_token"]

    assert served != old_access and served == stored_access_token(connected)
    (refresh,) = as_log.to("/demo-oauth/token/")
    assert refresh.form["refresh_token"] == [old_refresh]
    assert Token.objects.get(connection=connected).refresh_token.reveal() != old_refresh


def test_each_loop_shares_one_client_per_origin_closed_at_shutdown(
    asgi_server, connected, signed_in
):
    for _ in range(2):
        page = httpx.get(f"{asgi_server.url}/demo/async/crm/", cookies=signed_in)
        assert page.status_code == 200
    (loop, shared), *others = pool._async.items()
    assert others == []
    clients = [c for c in shared.values() if isinstance(c, httpx.AsyncClient)]
    assert len(clients) == 1 and not clients[0].is_closed  # both requests used it

    asgi_server.stop()  # lifespan shutdown (oauthconn.asgi.close_pools_at_shutdown)

    assert clients[0].is_closed and loop not in pool._async


# --- awaitables in the test's own event loop ---------------------------------------------------


def test_a_valid_token_is_served_without_suspending(connected, django_assert_num_queries):
    """The fast path neither queries nor hops to a thread: the coroutine finishes on its
    first step, without ever yielding to an event loop."""
    crm = run(aget_connection("crm"))
    with django_assert_num_queries(0):
        for coroutine in (crm.aaccess_token(), crm.atoken(), crm.ahas_scope("read")):
            with pytest.raises(StopIteration) as done:
                coroutine.send(None)
            assert done.value.value
    assert done.value.value is True
    assert run(crm.aaccess_token()) == stored_access_token(connected)


def test_a_valid_token_costs_one_query_and_no_refresh(connected, as_log, django_assert_num_queries):
    async def use() -> tuple[str, int]:
        crm = await aget_connection("crm")
        try:
            return await crm.aaccess_token(), (await crm.aget("me/")).status_code
        finally:
            await pool.aclose_pools()

    # async_to_sync runs the lookup's hop on this thread, where the queries are counted.
    with django_assert_num_queries(1):
        token, status = async_to_sync(use)()

    assert token == stored_access_token(connected) and status == 200
    assert as_log.to("/demo-oauth/token/") == []


def test_the_async_auth_flow_adds_a_valid_token_without_suspending(connected):
    """``async_client()`` and ``arequest`` authenticate through this flow: a kept token is
    added on the loop, with no thread hop (before issue 12, every request made one)."""
    crm = run(aget_connection("crm"))
    request = httpx.Request("GET", crm.api_base_url() + "me/")
    flow = ConnectionAuth(crm).async_auth_flow(request)
    with pytest.raises(StopIteration) as done:
        flow.__anext__().send(None)
    assert done.value.value.headers["Authorization"] == f"Bearer {stored_access_token(connected)}"
    run(flow.aclose())


def test_arequire_scopes_checks_the_grant_like_require_scopes(connected):
    crm = run(aget_connection("crm"))
    assert run(crm.arequire_scopes(["read", "write"])) is None
    with pytest.raises(ScopeNotAllowed):
        run(crm.arequire_scopes(["admin"]))


def test_aget_connection_raises_like_get_connection(connected, django_user_model):
    user = django_user_model.objects.create(username="bob")
    with pytest.raises(ConfigurationError, match="shared connection"):
        run(aget_connection("crm", owner=user))
    with pytest.raises(Exception) as sync_error:
        get_connection("missing")
    with pytest.raises(type(sync_error.value)):
        run(aget_connection("missing"))


@pytest.mark.parametrize("verb", ["get", "post", "put", "patch", "delete"])
def test_each_async_verb_sends_its_method_with_the_token(connected, as_log, verb):
    async def call() -> httpx.Response:
        crm = await aget_connection("crm")
        return await getattr(crm, f"a{verb}")("me/")

    response = run(call())

    # The demo API reads only; Django's CSRF check answers the other methods (no cookie).
    assert response.status_code == (200 if verb == "get" else 403)
    (seen,) = as_log.to("/demo-api/me/")
    assert seen.method == verb.upper()
    assert seen.headers["Authorization"] == f"Bearer {stored_access_token(connected)}"


def test_async_requests_keep_the_origin_rule(connected, live_server, as_log):
    other_port = live_server.url.rsplit(":", 1)[0] + ":1"

    async def steal(url: str) -> None:
        async with await aget_connection("crm") as crm:
            await crm.aget(url)

    for url in ("http://127.0.0.2:9/steal", f"{other_port}/demo-api/me/"):
        with pytest.raises(DisallowedResourceURL):
            run(steal(url))
    assert as_log.requests == []


def test_a_401_refreshes_once_and_retries_async(connected, as_log):
    stale = stored_access_token(connected)
    AccessToken.objects.filter(token=stale).update(expires=timezone.now() - timedelta(seconds=5))

    async def call() -> httpx.Response:
        crm = await aget_connection("crm")
        return await crm.aget("me/")

    response = run(call())

    assert response.status_code == 200
    calls = as_log.to("/demo-api/me/")
    assert [c.headers["Authorization"] for c in calls] == [
        f"Bearer {stale}",
        f"Bearer {stored_access_token(connected)}",
    ]
    assert len(as_log.to("/demo-oauth/token/")) == 1


def test_arequest_retries_a_503_like_request_and_takes_the_per_call_switches(
    connected, scripted_server
):
    Connection.objects.filter(pk=connected.pk).update(
        api_base_url=scripted_server.url("/api/"), retry_rate_limited=True
    )
    busy = Reply(503, {"Retry-After": "0"})
    scripted_server.add("/api/items", busy, Reply(200), busy, busy, Reply(201))

    async def calls() -> list[int]:
        crm = await aget_connection("crm")
        return [
            (await crm.aget("items")).status_code,  # retried
            (await crm.aget("items", retry=False)).status_code,  # not retried
            (await crm.apost("items", json={"n": 1}, idempotent=True)).status_code,
        ]

    assert run(calls()) == [200, 503, 201]
    sent = scripted_server.requests_to("/api/items")
    assert [r.method for r in sent] == ["GET", "GET", "GET", "POST", "POST"]


def test_a_stalled_api_ends_at_the_deadline_async(transactional_db, settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REQUEST_DEADLINE": 1.0, "READ_TIMEOUT": 30.0}
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n"
    with StallServer(Stall(answers=True, head=head, trickle=b"x" * 20, interval=0.4)) as api:
        provider = Provider.objects.create(
            slug="p", name="P", token_endpoint="https://as.example/token"
        )
        connection = Connection.objects.create(
            slug="slow", name="Slow", provider=provider, client_id="c", api_base_url=api.url()
        )
        Token.objects.create(
            connection=connection,
            access_token="a1",
            expires_at=timezone.now() + timedelta(hours=1),
        )

        async def call() -> httpx.Response:
            return await (await aget_connection("slow")).aget("data")

        with pytest.raises(DeadlineExceeded):
            run(call())


def test_the_loops_shared_client_keeps_no_cookies_between_grants(
    transactional_db, scripted_server, django_user_model
):
    """Two users' grants of one connection share the loop's client for the API's origin;
    the session cookie the API gives one of them is never sent with the other's request."""
    scripted_server.default("/api/me", Reply(headers={"Set-Cookie": "session=alice; Path=/"}))
    provider = Provider.objects.create(slug="p", name="P", token_endpoint="https://as.example/t")
    connection = Connection.objects.create(
        slug="mine",
        name="Mine",
        provider=provider,
        client_id="c",
        per_user=True,
        api_base_url=scripted_server.url("/api/"),
    )
    users = [django_user_model.objects.create(username=name) for name in ("alice", "bob")]
    for user in users:
        Token.objects.create(
            connection=connection,
            owner=user,
            access_token=f"token-of-{user.username}",
            expires_at=timezone.now() + timedelta(hours=1),
        )

    async def both() -> None:
        for user in users:
            await (await aget_connection("mine", owner=user)).aget("me")

    run(both())

    alice, bob = scripted_server.requests_to("/api/me")
    assert alice.headers["Authorization"] == "Bearer token-of-alice"
    assert bob.headers["Authorization"] == "Bearer token-of-bob"
    assert "Cookie" not in bob.headers


# --- single-flight for any mix of tasks, threads and processes ---------------------------------

TASKS = 12
THREADS = 4
REQUESTS = 4


def test_tasks_threads_and_asgi_requests_cause_one_refresh(
    strict_provider,  # noqa: F811
    asgi_server,
    connected,
    as_log,
):
    old_refresh = Token.objects.get(connection=connected).refresh_token.reveal()
    expire(connected)
    results: list[str] = []
    barrier = threading.Barrier(THREADS + REQUESTS + 1)

    def in_thread(ask) -> None:
        barrier.wait()
        try:
            results.append(ask())
        except Exception as err:  # noqa: BLE001 - the test reports any failure
            results.append(f"error: {type(err).__name__}: {err}")
        finally:
            connections.close_all()

    def sync_caller() -> str:
        return get_connection("crm").access_token

    def asgi_request() -> str:
        response = httpx.get(f"{asgi_server.url}/test-async/token/crm/", timeout=60)
        return response.json()["access_token"]

    threads = [threading.Thread(target=in_thread, args=(sync_caller,)) for _ in range(THREADS)]
    threads += [threading.Thread(target=in_thread, args=(asgi_request,)) for _ in range(REQUESTS)]
    for thread in threads:
        thread.start()

    async def task() -> str:
        return await (await aget_connection("crm")).aaccess_token()

    async def tasks() -> list[str]:
        return await asyncio.gather(*(task() for _ in range(TASKS)))

    barrier.wait()
    results += run(tasks())
    for thread in threads:
        thread.join()

    assert len(results) == TASKS + THREADS + REQUESTS
    assert_one_refresh_and_everyone_served(as_log, connected, results, old_refresh)


# A worker process: several asyncio tasks ask for the token together once told to go.
ASYNC_WORKER = r"""
import asyncio, json, sys
import django
django.setup()
from asgiref.sync import async_to_sync, sync_to_async
from django.db import connections
from oauthconn import aget_connection
from oauthconn.http.pool import aclose_pools

slug, count = sys.argv[1], int(sys.argv[2])

async def ask():
    try:
        return await (await aget_connection(slug)).aaccess_token()
    except Exception as err:
        return f"error: {type(err).__name__}: {err}"

async def main():
    try:
        return await asyncio.gather(*(ask() for _ in range(count)))
    finally:
        await aclose_pools()
        await sync_to_async(connections.close_all)()

print("ready", flush=True)
sys.stdin.readline()
print(json.dumps(asyncio.run(main())), flush=True)
"""

PROCESSES = 3
TASKS_PER_PROCESS = 4


@pytest.mark.postgres
def test_tasks_in_several_processes_and_threads_cause_one_refresh(
    strict_provider,  # noqa: F811
    connected,
    as_log,
):
    import subprocess

    from tests.test_concurrency import ROOT

    old_refresh = Token.objects.get(connection=connected).refresh_token.reveal()
    expire(connected)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", ASYNC_WORKER, "crm", str(TASKS_PER_PROCESS)],
            cwd=ROOT,
            env=subprocess_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    for process in processes:
        expect_line(process, "ready")
    results: list[str] = []
    barrier = threading.Barrier(THREADS + 1)

    def in_thread() -> None:
        barrier.wait()
        try:
            results.append(get_connection("crm").access_token)
        except Exception as err:  # noqa: BLE001 - the test reports any failure
            results.append(f"error: {type(err).__name__}: {err}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=in_thread) for _ in range(THREADS)]
    for thread in threads:
        thread.start()

    async def tasks() -> list[str]:
        async def ask() -> str:
            return await (await aget_connection("crm")).aaccess_token()

        return await asyncio.gather(*(ask() for _ in range(TASKS)))

    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    barrier.wait()
    results += run(tasks())
    for thread in threads:
        thread.join()
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
        results += json.loads(out.strip().splitlines()[-1])

    assert len(results) == TASKS + THREADS + PROCESSES * TASKS_PER_PROCESS
    assert_one_refresh_and_everyone_served(as_log, connected, results, old_refresh)


def test_the_pools_of_an_event_loop_that_closed_are_forgotten(connected, as_log):
    # Each asyncio.run (or async_to_sync call) may bring a new loop; a site that never closes
    # its pools must not keep every dead loop's pools for the life of the process.
    async def call() -> int:
        crm = await aget_connection("crm")
        try:
            return (await crm.aget("me/")).status_code
        finally:
            await sync_to_async(connections.close_all)()

    assert asyncio.run(call()) == 200
    (first,) = pool._async
    assert asyncio.run(call()) == 200

    assert first.is_closed() and first not in pool._async
    assert len(pool._async) == 1

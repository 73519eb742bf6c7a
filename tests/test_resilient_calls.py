"""Calls that survive the provider's API (docs/calls.md): opt-in retries on 429 and 503 with
Retry-After, the cap and the deadline, idempotency, the typed error after the last attempt,
the extra "refresh and retry" statuses, rate-limit headers, and the settings in the admin and
the API.

The token comes from django-oauth-toolkit over real HTTP; the API is a scripted real HTTP
server (tests/scripted_server.py) that answers 429 / 503 / 403 as told. Waits are checked
through the times the server recorded (lower bounds only) or an injected ``sleep``.
"""

from __future__ import annotations

import asyncio
import pickle
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from rest_framework.test import APIClient

import oauthconn
from oauthconn import get_connection, http
from oauthconn.exceptions import RateLimited, RetriesExhausted
from oauthconn.flows.resource import ConnectionAuth
from oauthconn.flows.retry import RetryingAuth, RetryPolicy
from oauthconn.http.ratelimit import RateLimit, rate_limit
from oauthconn.models import Connection, Token
from tests.conftest import authorize
from tests.scripted_server import RecordedRequest, Reply
from tests.test_admin_pages import change_data, url

pytestmark = pytest.mark.django_db(transaction=True)

PATH = "/api/items"
TOO_MANY = {"error": "rate_limited", "detail": "slow down"}


@pytest.fixture
def connected(staff_client, make_connection, scripted_server, as_log) -> Connection:
    """A connection authorized at django-oauth-toolkit whose API is the scripted server."""
    connection = make_connection("crm")
    authorize(staff_client, connection)
    Connection.objects.filter(pk=connection.pk).update(api_base_url=scripted_server.url("/api/"))
    as_log.clear()
    connection.refresh_from_db()
    return connection


def configure(connection: Connection, **fields) -> None:
    Connection.objects.filter(pk=connection.pk).update(**fields)


def timed(server, *replies: Reply) -> list[float]:
    """Queue ``replies`` for PATH; return the list the arrival time of each request goes to."""
    times: list[float] = []

    def arriving(reply: Reply):
        def respond(request: RecordedRequest) -> Reply:
            times.append(time.monotonic())
            return reply

        return respond

    server.add(PATH, *(arriving(reply) for reply in replies))
    return times


def http_date(seconds_from_now: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now), usegmt=True)


# --- retries on 429 and 503 ------------------------------------------------------------------


def test_a_429_with_retry_after_seconds_is_waited_out_and_retried(connected, scripted_server):
    configure(connected, retry_rate_limited=True)
    times = timed(
        scripted_server,
        Reply(429, {"Retry-After": "1"}, TOO_MANY),
        Reply(200, body={"items": [1]}),
    )

    response = get_connection("crm").get("items")

    assert response.status_code == 200 and response.json() == {"items": [1]}
    assert [r.status_code for r in response.history] == [429]
    assert len(times) == 2 and times[1] - times[0] >= 1.0
    token = Token.objects.get(connection=connected).access_token.reveal()
    assert {r.headers["Authorization"] for r in scripted_server.requests} == {f"Bearer {token}"}


def test_a_retry_after_http_date_is_honoured(connected, scripted_server):
    configure(connected, retry_rate_limited=True)
    # HTTP-dates have whole seconds: two seconds ahead is at least one second of waiting.
    times = timed(scripted_server, Reply(503, {"Retry-After": http_date(2)}), Reply(200))

    assert get_connection("crm").get("items").status_code == 200
    assert len(times) == 2 and times[1] - times[0] >= 0.9


def test_without_retry_after_the_backoff_is_jittered_and_grows(connected, scripted_server):
    configure(connected, retry_rate_limited=True, max_attempts=4, max_retry_wait=30)
    scripted_server.add(PATH, Reply(503), Reply(503), Reply(429), Reply(200))
    crm = get_connection("crm")
    waits: list[float] = []
    auth = RetryingAuth(ConnectionAuth(crm), RetryPolicy.of(crm.connection), sleep=waits.append)

    with http.build_client(base_url=crm.api_base_url(), auth=auth) as client:
        assert client.get("items").status_code == 200

    assert len(scripted_server.requests_to(PATH)) == 4
    assert 0.4 <= waits[0] <= 0.6 and 0.8 <= waits[1] <= 1.2 and 1.6 <= waits[2] <= 2.4


def test_the_backoff_never_waits_longer_than_the_cap(connected, scripted_server):
    configure(connected, retry_rate_limited=True, max_attempts=10, max_retry_wait=1)
    scripted_server.add(PATH, *[Reply(503)] * 9, Reply(200))
    crm = get_connection("crm")
    waits: list[float] = []
    auth = RetryingAuth(ConnectionAuth(crm), RetryPolicy.of(crm.connection), sleep=waits.append)

    with http.build_client(base_url=crm.api_base_url(), auth=auth) as client:
        assert client.get("items").status_code == 200
    # Eight waits at the cap, each jittered by ±20 %: without the clamp, one goes past it
    # all but 0.4 % of the time.
    assert len(waits) == 9 and max(waits) <= 1.0


def test_the_last_attempt_raises_with_the_final_response(connected, scripted_server):
    configure(connected, retry_rate_limited=True, max_attempts=3)
    scripted_server.add(PATH, Reply(503, {"Retry-After": "0"}), Reply(503, {"Retry-After": "0"}))
    scripted_server.add(PATH, Reply(429, {"Retry-After": "0", "X-Attempt": "3"}, TOO_MANY))

    with pytest.raises(RateLimited) as caught:
        get_connection("crm").get("items?api_key=k3y")

    err = caught.value
    assert err.attempts == 3 and err.status_code == 429
    assert err.response.headers["X-Attempt"] == "3" and err.response.json() == TOO_MANY
    assert isinstance(err, RetriesExhausted) and isinstance(err, httpx.HTTPStatusError)
    assert str(err) == (
        f"GET 127.0.0.1{PATH} answered 429 Too Many Requests after 3 attempts."
    )  # no query string: it may hold an API key
    assert len(scripted_server.requests_to(PATH)) == 3


def test_the_error_survives_pickling_as_a_task_queue_does_it(connected, scripted_server):
    configure(connected, retry_rate_limited=True, max_retry_wait=5)
    scripted_server.add(PATH, Reply(429, {"Retry-After": "7"}, TOO_MANY))
    with pytest.raises(RateLimited) as caught:
        get_connection("crm").get("items")

    copy = pickle.loads(pickle.dumps(caught.value))

    assert type(copy) is RateLimited and str(copy) == str(caught.value)
    assert (copy.attempts, copy.retry_after, copy.response.json()) == (1, 7.0, TOO_MANY)


def test_a_503_after_the_last_attempt_is_retries_exhausted(connected, scripted_server):
    configure(connected, retry_rate_limited=True, max_attempts=2)
    scripted_server.default(PATH, Reply(503, {"Retry-After": "0"}, "down for maintenance"))

    with pytest.raises(RetriesExhausted) as caught:
        get_connection("crm").get("items")

    assert not isinstance(caught.value, RateLimited)
    assert caught.value.attempts == 2 and caught.value.response.text == "down for maintenance"
    assert len(scripted_server.requests_to(PATH)) == 2


@pytest.mark.parametrize("year", ["31536000", http_date(365 * 24 * 3600)])
def test_a_retry_after_over_the_cap_raises_at_once(connected, scripted_server, year):
    configure(connected, retry_rate_limited=True, max_retry_wait=30)
    scripted_server.add(PATH, Reply(429, {"Retry-After": year}, TOO_MANY), Reply(200))

    with pytest.raises(RateLimited) as caught:  # at once: a wait would hang this test
        get_connection("crm").get("items")

    assert caught.value.attempts == 1 and caught.value.retry_after == 3600  # "an hour or more"
    assert "more than this connection's 30 s" in str(caught.value)
    assert len(scripted_server.requests_to(PATH)) == 1


def test_no_wait_is_started_that_would_end_past_the_deadline(connected, scripted_server, settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REQUEST_DEADLINE": 5}
    configure(connected, retry_rate_limited=True, max_retry_wait=60)
    scripted_server.add(PATH, Reply(429, {"Retry-After": "10"}), Reply(200))

    with pytest.raises(RateLimited, match="5 s deadline") as caught:
        get_connection("crm").get("items")
    assert caught.value.retry_after == 10
    assert len(scripted_server.requests_to(PATH)) == 1


def test_a_client_deadline_gives_the_waits_more_room(connected, scripted_server, settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REQUEST_DEADLINE": 5}
    configure(connected, retry_rate_limited=True, max_retry_wait=60)
    scripted_server.add(PATH, Reply(429, {"Retry-After": "10"}), Reply(200))
    crm = get_connection("crm")
    waits: list[float] = []
    policy = RetryPolicy.of(crm.connection, deadline=60)
    auth = RetryingAuth(ConnectionAuth(crm), policy, sleep=waits.append)
    with http.build_client(base_url=crm.api_base_url(), auth=auth, deadline=60) as client:
        assert client.get("items").status_code == 200
    assert waits == [10.0]
    assert RetryPolicy.of(crm.connection).deadline == 5  # REQUEST_DEADLINE by default


# --- who gets retried ------------------------------------------------------------------------


def test_retries_are_off_by_default_and_the_429_is_returned(connected, scripted_server):
    scripted_server.add(PATH, Reply(429, {"Retry-After": "0"}, TOO_MANY), Reply(200))
    response = get_connection("crm").get("items")
    assert response.status_code == 429 and response.json() == TOO_MANY
    assert len(scripted_server.requests_to(PATH)) == 1


def test_a_call_can_turn_retries_on_or_off(connected, scripted_server):
    scripted_server.add(PATH, Reply(429, {"Retry-After": "0"}), Reply(200))
    assert get_connection("crm").get("items", retry=True).status_code == 200
    assert len(scripted_server.requests_to(PATH)) == 2

    configure(connected, retry_rate_limited=True)
    scripted_server.add(PATH, Reply(429, {"Retry-After": "0"}), Reply(200))
    assert get_connection("crm").get("items", retry=False).status_code == 429
    assert len(scripted_server.requests_to(PATH)) == 3


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_post_and_patch_are_retried_only_when_the_caller_says_idempotent(
    connected, scripted_server, method
):
    configure(connected, retry_rate_limited=True)
    crm = get_connection("crm")
    busy = Reply(503, {"Retry-After": "0"})
    scripted_server.add(PATH, busy, busy, Reply(201))
    assert crm.request(method, "items", json={"n": 1}).status_code == 503
    assert len(scripted_server.requests_to(PATH)) == 1

    response = crm.request(method, "items", json={"n": 1}, idempotent=True)

    assert response.status_code == 201
    sent = scripted_server.requests_to(PATH)
    assert [r.method for r in sent] == [method] * 3 and sent[2].body == sent[1].body


@pytest.mark.parametrize("method", ["PUT", "DELETE", "HEAD"])
def test_idempotent_methods_are_retried(connected, scripted_server, method):
    configure(connected, retry_rate_limited=True)
    scripted_server.add(PATH, Reply(429, {"Retry-After": "0"}), Reply(204))
    assert get_connection("crm").request(method, "items").status_code == 204
    assert len(scripted_server.requests_to(PATH)) == 2


def test_a_get_the_caller_marks_not_idempotent_is_not_retried(connected, scripted_server):
    configure(connected, retry_rate_limited=True)
    scripted_server.add(PATH, Reply(429, {"Retry-After": "0"}), Reply(200))
    assert get_connection("crm").get("items", idempotent=False).status_code == 429


def test_the_bound_client_retries_too(connected, scripted_server):
    configure(connected, retry_rate_limited=True)
    scripted_server.add(PATH, Reply(429, {"Retry-After": "0"}), Reply(200, body={"ok": 1}))
    with get_connection("crm").client() as client:
        assert client.get("items").json() == {"ok": 1}
    assert len(scripted_server.requests_to(PATH)) == 2


def test_the_async_client_retries_and_raises_the_same_way(connected, scripted_server):
    configure(connected, retry_rate_limited=True, max_attempts=2)
    scripted_server.add(PATH, Reply(503, {"Retry-After": "0"}), Reply(200, body={"ok": 1}))
    scripted_server.add(PATH, Reply(429, {"Retry-After": "0"}), Reply(429, {"Retry-After": "0"}))
    crm = get_connection("crm")

    async def calls():
        async with crm.async_client() as client:
            first = (await client.get("items")).json()
            try:
                await client.get("items")
            except RateLimited as err:
                return first, err
        raise AssertionError("no RateLimited")

    first, err = asyncio.run(calls())
    assert first == {"ok": 1}
    assert err.attempts == 2 and err.response.status_code == 429
    assert len(scripted_server.requests_to(PATH)) == 4


def test_the_async_client_waits_with_asyncio(connected, scripted_server):
    configure(connected, retry_rate_limited=True)
    times = timed(scripted_server, Reply(429, {"Retry-After": "1"}), Reply(200))
    crm = get_connection("crm")

    async def call():
        async with crm.async_client() as client:
            return (await client.get("items")).status_code

    assert asyncio.run(call()) == 200
    assert len(times) == 2 and times[1] - times[0] >= 1.0


# --- refresh and retry on the connection's extra statuses --------------------------------------


def expired_token_server(server, stale: str, status: int = 403, **reply) -> None:
    """The API answers ``status`` to the stale token, 200 to any other."""

    def respond(request: RecordedRequest) -> Reply:
        if request.headers.get("Authorization") == f"Bearer {stale}":
            return Reply(status, body={"error": "token expired"}, **reply)
        return Reply(200, body={"ok": True})

    server.default(PATH, respond)


def test_an_extra_status_refreshes_once_and_retries_once(connected, scripted_server, as_log):
    configure(connected, refresh_on_status=[403])
    crm = get_connection("crm")
    stale = crm.access_token
    expired_token_server(scripted_server, stale)

    response = crm.get("items")

    assert response.status_code == 200
    (refresh,) = as_log.to("/demo-oauth/token/")  # django-oauth-toolkit, over real HTTP
    assert refresh.form["grant_type"] == ["refresh_token"]
    fresh = Token.objects.get(connection=connected).access_token.reveal()
    assert fresh != stale
    sent = [r.headers["Authorization"] for r in scripted_server.requests_to(PATH)]
    assert sent == [f"Bearer {stale}", f"Bearer {fresh}"]


def test_an_extra_status_is_not_retried_twice(connected, scripted_server, as_log):
    configure(connected, refresh_on_status=[400, 403])
    scripted_server.default(PATH, Reply(400, body={"error": "expired_token"}))

    assert get_connection("crm").get("items").status_code == 400
    assert len(as_log.to("/demo-oauth/token/")) == 1
    assert len(scripted_server.requests_to(PATH)) == 2


def test_a_status_the_connection_does_not_list_is_returned(connected, scripted_server, as_log):
    crm = get_connection("crm")
    expired_token_server(scripted_server, crm.access_token)
    assert crm.get("items").status_code == 403
    assert as_log.to("/demo-oauth/token/") == []


def test_insufficient_scope_is_never_refreshed(connected, scripted_server, as_log):
    configure(connected, refresh_on_status=[403])
    crm = get_connection("crm")
    challenge = {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}
    expired_token_server(scripted_server, crm.access_token, headers=challenge)
    assert crm.get("items").status_code == 403
    assert as_log.to("/demo-oauth/token/") == []


def test_the_async_client_refreshes_on_an_extra_status(connected, scripted_server, as_log):
    configure(connected, refresh_on_status=[403])
    crm = get_connection("crm")
    expired_token_server(scripted_server, crm.access_token)

    async def call():
        async with crm.async_client() as client:
            return (await client.get("items")).status_code

    assert asyncio.run(call()) == 200
    assert len(as_log.to("/demo-oauth/token/")) == 1


# --- rate-limit headers ------------------------------------------------------------------------


def test_rate_limit_headers_are_exposed_on_the_response(connected, scripted_server):
    headers = {"RateLimit-Limit": "100", "RateLimit-Remaining": "0", "RateLimit-Reset": "42"}
    scripted_server.add(PATH, Reply(200, headers), Reply(200))

    crm = get_connection("crm")
    limits = oauthconn.rate_limit(crm.get("items"))

    assert limits == RateLimit(limit=100, remaining=0, reset=42.0) and limits.exhausted
    assert oauthconn.rate_limit(crm.get("items")) is None


def response(**headers: str) -> httpx.Response:
    return httpx.Response(200, headers=headers)


def test_x_rate_limit_headers_with_a_unix_reset():
    github = response(
        **{"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4999"},
        **{"X-RateLimit-Reset": "1700000060"},
    )
    assert rate_limit(github, now=1_700_000_000) == RateLimit(5000, 4999, 60.0)
    past = response(**{"X-RateLimit-Reset": "1700000000"})
    assert rate_limit(past, now=1_700_000_100) == RateLimit(None, None, 0.0)


def test_the_ietf_spelling_wins_and_malformed_values_are_ignored():
    both = response(
        **{"RateLimit-Remaining": "7", "X-RateLimit-Remaining": "9"},
        **{"RateLimit-Limit": "10, 10;w=1, 1000;w=3600", "RateLimit-Reset": "soon"},
    )
    assert rate_limit(both) == RateLimit(limit=10, remaining=7, reset=None)
    assert rate_limit(response(**{"X-RateLimit-Limit": "-1"})) is None
    arabic_three = httpx.Response(200, headers=[(b"RateLimit-Remaining", "٣".encode())])
    assert rate_limit(arabic_three) is None  # a digit to str.isdigit(), not to HTTP


# --- the settings: admin and API ---------------------------------------------------------------


def test_the_change_form_saves_the_retry_settings(connected, staff_client):
    data = change_data(
        connected,
        retry_rate_limited="on",
        max_attempts="5",
        max_retry_wait="12",
        refresh_on_status="403, 400",
    )
    page = staff_client.get(url("change", connected)).content.decode()
    assert 'name="refresh_on_status"' in page and 'name="max_retry_wait"' in page

    assert staff_client.post(url("change", connected), data).status_code == 302

    connected.refresh_from_db()
    assert connected.retry_rate_limited and connected.refresh_on_status == [403, 400]
    assert (connected.max_attempts, connected.max_retry_wait) == (5, 12)
    assert connected.tokens.get().access_token is not None  # not a security-relevant edit
    assert 'value="403, 400"' in staff_client.get(url("change", connected)).content.decode()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("refresh_on_status", "401", "401 always refreshes"),
        ("refresh_on_status", "403, 302", "Only error statuses (400-599)"),
        ("refresh_on_status", "forbidden", "separated by commas"),
        ("refresh_on_status", "403, 403", "each status once"),
        ("max_attempts", "0", "greater than or equal to 1"),
        ("max_attempts", "11", "less than or equal to 10"),
        ("max_retry_wait", "301", "less than or equal to 300"),
    ],
)
def test_the_change_form_refuses_bad_values(connected, staff_client, field, value, message):
    before = Connection.objects.values().get(pk=connected.pk)
    data = change_data(connected, retry_rate_limited="on", **{field: value})

    response = staff_client.post(url("change", connected), data)

    assert response.status_code == 200
    assert message in " ".join(response.context["adminform"].form.errors[field])
    assert Connection.objects.values().get(pk=connected.pk) == before


@pytest.fixture
def api_client(staff) -> APIClient:
    client = APIClient()
    client.force_login(staff)
    return client


def test_the_api_reads_and_writes_the_retry_settings(connected, api_client):
    endpoint = f"/api/oauthconn/connections/{connected.pk}/"
    settings = {
        "retry_rate_limited": True,
        "max_attempts": 4,
        "max_retry_wait": 10,
        "refresh_on_status": [403],
    }
    assert api_client.patch(endpoint, settings, format="json").status_code == 200

    body = api_client.get(endpoint).json()
    assert {name: body[name] for name in settings} == settings
    connected.refresh_from_db()
    assert connected.refresh_on_status == [403] and connected.max_attempts == 4


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"refresh_on_status": [401]}, "refresh_on_status", "401 always refreshes"),
        ({"refresh_on_status": [600]}, "refresh_on_status", "less than or equal to 599"),
        ({"refresh_on_status": ["x"]}, "refresh_on_status", "valid integer"),
        ({"refresh_on_status": 403}, "refresh_on_status", "list"),
        ({"max_attempts": 0}, "max_attempts", "greater than or equal to 1"),
        ({"max_retry_wait": 0}, "max_retry_wait", "greater than or equal to 1"),
        ({"max_retry_wait": 3600}, "max_retry_wait", "less than or equal to 300"),
    ],
)
def test_the_api_refuses_bad_values(connected, api_client, changes, field, message):
    before = Connection.objects.values().get(pk=connected.pk)
    endpoint = f"/api/oauthconn/connections/{connected.pk}/"

    response = api_client.patch(endpoint, changes, format="json")

    assert response.status_code == 400
    assert message in " ".join(map(str, _messages(response.json()["fields"][field])))
    assert Connection.objects.values().get(pk=connected.pk) == before


def _messages(errors) -> list:
    """DRF's errors for a field: a list of messages, or per list item a dict of lists."""
    if isinstance(errors, dict):
        return [m for item in errors.values() for m in item]
    return errors


def test_policy_reads_the_connection(connected):
    policy = RetryPolicy.of(connected)
    assert (policy.enabled, policy.max_attempts, policy.max_wait) == (False, 3, 30.0)
    get = httpx.Request("GET", "http://x/")
    post = httpx.Request("POST", "http://x/", extensions={"oauthconn_idempotent": True})
    assert not policy.applies_to(get) and replace(policy, enabled=True).applies_to(get)
    assert replace(policy, enabled=True).applies_to(post)
    assert not replace(policy, enabled=True, max_attempts=1).applies_to(get)

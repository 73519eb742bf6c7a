"""No outbound request outlives REQUEST_DEADLINE, whatever phase the server stalls in (R46).

Each provider or API here is a raw TCP server on 127.0.0.1 (:mod:`tests.stall_server`) that
stalls in one phase: it never answers after accepting, it never answers the TLS ClientHello,
it never accepts (a full listen queue), or it trickles the status line, the headers or the
body. The trickles are slower than nothing yet faster than any per-read timeout, which is
how a server holds a worker that only has per-operation timeouts: the request must still
end at the deadline (+1 s of slack) with a typed ``ProviderTimeout``.

``REQUEST_DEADLINE`` is 2 s while ``READ_TIMEOUT`` and ``CONNECT_TIMEOUT`` keep their
longer defaults, so only the deadline can end these requests in time. The trickle intervals
are scaled to that 2 s deadline: the review's "1 byte every 2 s" against a 30 s deadline is
"1 byte every 0.5 s" here, and its "body, 1 byte every 9 s" (just under the 10 s read
timeout) is "1 byte every 1.8 s" (just under the 2 s that is left of a read timeout capped
by the deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from oauthconn import get_connection, http
from oauthconn.exceptions import (
    DeadlineExceeded,
    DiscoveryFailed,
    JWKSUnavailable,
    ProviderTimeout,
    TemporarilyUnavailable,
)
from oauthconn.flows.discovery import discover_provider
from oauthconn.flows.revocation import disconnect
from oauthconn.models import Connection, Provider, Token, TokenStatus
from oauthconn.oauth.jwks import fetch_jwks
from tests.stall_server import Stall, StallServer, full_backlog

DEADLINE = 2.0
SLACK = 1.0

JSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
BODY = b'{"access_token": "new", "token_type": "Bearer", "keys": [], "padding": "xxxxxxxx"}'
FULL_HEAD = JSON_HEAD + b"Content-Length: %d\r\n\r\n" % len(BODY)

#: phase -> how the server behaves (None: a listen queue that is full, so connect hangs)
STALLS: dict[str, Stall | None] = {
    "connect never completes": None,
    "silent after accepting": Stall(),
    "TLS handshake never answered": Stall(),
    "status line, 1 byte / 0.5 s": Stall(answers=True, trickle=FULL_HEAD + BODY, interval=0.5),
    "headers, 1 byte / 0.5 s": Stall(
        answers=True, head=b"HTTP/1.1 200 OK\r\n", trickle=FULL_HEAD[17:] + BODY, interval=0.5
    ),
    "body, 1 byte / 0.5 s": Stall(answers=True, head=FULL_HEAD, trickle=BODY, interval=0.5),
    "body, 1 byte / 1.8 s": Stall(answers=True, head=FULL_HEAD, trickle=BODY, interval=1.8),
}


@pytest.fixture(autouse=True)
def short_deadline(settings):
    settings.OAUTHCONN = {
        **settings.OAUTHCONN,
        "REQUEST_DEADLINE": DEADLINE,
        "READ_TIMEOUT": 10.0,
        "CONNECT_TIMEOUT": 5.0,
    }


@pytest.fixture
def stalling() -> Iterator[Callable[[str, str], str]]:
    """``stalling(phase, path)``: the URL of a server stalling in ``phase``; all stop after."""
    with _Servers() as servers:
        yield servers.url


class _Servers:
    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()

    def url(self, phase: str, path: str = "/") -> str:
        stall = STALLS[phase]
        if stall is None:
            port = self._stack.enter_context(full_backlog())
            return f"http://127.0.0.1:{port}{path}"
        scheme = "https" if "TLS" in phase else "http"
        return self._stack.enter_context(StallServer(stall, scheme=scheme)).url(path)

    def __enter__(self) -> _Servers:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


class Timer:
    def __enter__(self) -> Timer:
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.monotonic() - self.started


def assert_ended_in_time(timer: Timer) -> None:
    assert timer.elapsed < DEADLINE + SLACK, f"took {timer.elapsed:.1f} s"


# --- the token endpoint: the refresh flow -----------------------------------------------------

OLD_ACCESS, OLD_REFRESH = "old-access-token", "old-refresh-token"


def make_connection(*, token_endpoint: str = "", api_base_url: str = "", **provider) -> None:
    """A connection "crm" with a grant whose access token has expired (or not, for the API)."""
    provider_row = Provider.objects.create(
        slug="stalling",
        name="Stalling",
        token_endpoint=token_endpoint or "https://as.example/token",
        **provider,
    )
    connection = Connection.objects.create(
        slug="crm",
        name="CRM",
        provider=provider_row,
        client_id="client-crm",
        client_secret="s3cret",
        scopes="read",
        api_base_url=api_base_url,
    )
    now = timezone.now()
    Token.objects.create(
        connection=connection,
        access_token=OLD_ACCESS,
        refresh_token=OLD_REFRESH,
        expires_at=now + timedelta(seconds=-1 if token_endpoint else 3600),
        authorized_at=now - timedelta(hours=1),
        scope="read",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("phase", STALLS)
def test_refresh_ends_at_the_deadline_and_keeps_the_grant(stalling, phase):
    make_connection(token_endpoint=stalling(phase, "/token"))
    with Timer() as timer, pytest.raises(TemporarilyUnavailable) as caught:
        get_connection("crm").access_token  # noqa: B018 (the property refreshes)
    assert_ended_in_time(timer)
    assert isinstance(caught.value.__cause__, ProviderTimeout)
    token = Token.objects.get(connection__slug="crm")
    assert token.status == TokenStatus.FAILING
    assert token.access_token.reveal() == OLD_ACCESS
    assert token.refresh_token.reveal() == OLD_REFRESH


# --- resource calls through a connection, sync and async --------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("phase", STALLS)
def test_resource_call_ends_at_the_deadline(stalling, phase):
    make_connection(api_base_url=stalling(phase, "/api/"))
    crm = get_connection("crm")
    with Timer() as timer, pytest.raises(ProviderTimeout) as caught:
        crm.get("contacts")
    crm.close()
    assert_ended_in_time(timer)
    assert isinstance(caught.value, DeadlineExceeded)
    # Code written against httpx keeps catching it.
    assert isinstance(caught.value, httpx.TimeoutException)


@pytest.mark.django_db
@pytest.mark.parametrize("phase", STALLS)
def test_async_resource_call_ends_at_the_deadline(stalling, phase):
    make_connection(api_base_url=stalling(phase, "/api/"))
    crm = get_connection("crm")

    async def call() -> None:
        async with crm.async_client() as client:
            await client.get("contacts")

    with Timer() as timer, pytest.raises(ProviderTimeout) as caught:
        asyncio.run(call())
    assert_ended_in_time(timer)
    assert isinstance(caught.value, DeadlineExceeded)
    assert isinstance(caught.value, httpx.TimeoutException)


# --- discovery, JWKS, revocation ---------------------------------------------------------------


@pytest.mark.parametrize("phase", ["headers, 1 byte / 0.5 s", "body, 1 byte / 1.8 s"])
def test_discovery_ends_at_the_deadline(stalling, phase):
    issuer = stalling(phase, "/")
    with Timer() as timer, pytest.raises(DiscoveryFailed) as caught:
        discover_provider(issuer.rstrip("/"))
    assert_ended_in_time(timer)
    assert isinstance(caught.value.__cause__, ProviderTimeout)


@pytest.mark.parametrize("phase", ["headers, 1 byte / 0.5 s", "body, 1 byte / 1.8 s"])
def test_jwks_fetch_ends_at_the_deadline(stalling, phase):
    jwks_uri = stalling(phase, "/jwks")
    with Timer() as timer, http.build_client() as client, pytest.raises(JWKSUnavailable) as caught:
        fetch_jwks(client, jwks_uri)
    assert_ended_in_time(timer)
    assert isinstance(caught.value.__cause__, ProviderTimeout)


@pytest.mark.django_db
@pytest.mark.parametrize("phase", ["headers, 1 byte / 0.5 s", "body, 1 byte / 1.8 s"])
def test_revocation_ends_at_the_deadline(stalling, phase):
    make_connection(revocation_endpoint=stalling(phase, "/revoke"))
    token = Token.objects.get(connection__slug="crm")
    with Timer() as timer:
        result = disconnect(token)
    assert_ended_in_time(timer)
    # A timeout is transient: both tokens wait for oauthconn_revoke_pending.
    assert result.revoked_at_provider is False
    assert [hint for _, hint in result.pending] == ["refresh_token", "access_token"]
    assert "deadline" in result.message


# --- the deadline is per request, and can be longer for a client -------------------------------


@pytest.mark.django_db
def test_a_client_may_have_a_longer_deadline():
    """``conn.client(deadline=...)`` lets a slow but steady resource call finish."""
    steady = Stall(
        answers=True,
        head=JSON_HEAD + b"Content-Length: 8\r\n\r\n",
        trickle=b"12345678",
        interval=0.4,
    )
    with StallServer(steady) as server:
        make_connection(api_base_url=server.url("/api/"))
        crm = get_connection("crm")
        with crm.client(deadline=DEADLINE + 5) as client:
            response = client.get("export")
    assert response.content == b"12345678"


def test_deadline_must_be_positive():
    with pytest.raises(ValueError, match="positive"):
        http.build_client(deadline=0)

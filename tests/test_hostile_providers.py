"""Refresh against hostile and broken token endpoints (SECURITY §2.2, §2.3, §2.8).

Each provider is a small real HTTP server (``scripted_server``). Whatever it answers, code gets
a typed exception, the admin gets a readable sentence in ``Token.last_error``, and every token
the connection had is still there.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from oauthconn import get_connection
from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import (
    InvalidClient,
    InvalidGrant,
    InvalidProviderResponse,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    ReauthorizationRequired,
    ResponseTooLarge,
    TemporarilyUnavailable,
    TransportError,
    UnauthorizedClient,
)
from oauthconn.models import Connection, Provider, Token, TokenStatus
from tests.scripted_server import Reply

pytestmark = pytest.mark.django_db

OLD_ACCESS, OLD_REFRESH = "old-access-token", "old-refresh-token"
GOOD = {"access_token": "new-access", "token_type": "Bearer", "expires_in": 3600}


@pytest.fixture
def make_hostile(scripted_server):
    """A connected connection whose token endpoint is ``scripted_server``'s /token."""

    def make(*, endpoint: str | None = None, expired: bool = True, **fields) -> Connection:
        provider = Provider.objects.create(
            slug="hostile",
            name="Hostile",
            token_endpoint=endpoint or scripted_server.url("/token"),
        )
        connection = Connection.objects.create(
            slug="crm",
            name="CRM",
            provider=provider,
            client_id="client-crm",
            client_secret="s3cret",
            scopes="read",
            **fields,
        )
        now = timezone.now()
        Token.objects.create(
            connection=connection,
            access_token=OLD_ACCESS,
            refresh_token=OLD_REFRESH,
            expires_at=now + (timedelta(seconds=-1) if expired else timedelta(seconds=30)),
            authorized_at=now - timedelta(hours=1),
            scope="read",
        )
        return connection

    return make


def access_token() -> str:
    return get_connection("crm").access_token


def the_token() -> Token:
    return Token.objects.get(connection__slug="crm")


def assert_tokens_kept(status: str = TokenStatus.FAILING) -> Token:
    token = the_token()
    assert token.access_token.reveal() == OLD_ACCESS
    assert token.refresh_token.reveal() == OLD_REFRESH
    assert token.status == status
    return token


HOSTILE = {
    "html page with 200": (
        Reply(body="<html><body>Sign in</body></html>", headers={"Content-Type": "text/html"}),
        InvalidProviderResponse,
        "HTML",
    ),
    "not json": (
        Reply(body="all good", headers={"Content-Type": "text/plain"}),
        InvalidProviderResponse,
        "Invalid JSON",
    ),
    "json that is not an object": (Reply(body=[GOOD]), InvalidProviderResponse, "not an object"),
    "no access_token": (
        Reply(body={"token_type": "Bearer", "expires_in": 3600}),
        InvalidProviderResponse,
        "no access_token",
    ),
    "token_type mac": (
        Reply(body={**GOOD, "token_type": "mac"}),
        InvalidProviderResponse,
        "Unsupported token type",
    ),
    "expires_in negative": (
        Reply(body={**GOOD, "expires_in": -5}),
        InvalidProviderResponse,
        "expires_in",
    ),
    "expires_in zero": (
        Reply(body={**GOOD, "expires_in": 0}),
        InvalidProviderResponse,
        "expires_in",
    ),
    "expires_in not a number": (
        Reply(body={**GOOD, "expires_in": "soon"}),
        InvalidProviderResponse,
        "expires_in",
    ),
    "redirect": (
        Reply(status=302, headers={"Location": "/elsewhere"}),
        InvalidProviderResponse,
        "redirect",
    ),
    "html 503": (
        Reply(status=503, body="<h1>Down</h1>", headers={"Content-Type": "text/html"}),
        ProviderUnavailable,
        "temporarily unavailable",
    ),
    "500 json": (Reply(status=500, body={"oops": True}), ProviderUnavailable, "unavailable"),
    "400 not json": (
        Reply(status=400, body="Bad", headers={"Content-Type": "text/plain"}),
        ProviderError,
        "not JSON",
    ),
    "oauth error on a 200": (
        Reply(body={"error": "server_error", "error_description": "try later"}),
        ProviderUnavailable,
        "server_error: try later",
    ),
    "several megabytes": (
        Reply(chunks=itertools.repeat(b" " * 65536, 80), headers={"Content-Type": "text/plain"}),
        ResponseTooLarge,
        "exceeded",
    ),
}


@pytest.mark.parametrize("reply,cause,says", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_answer_keeps_every_token(make_hostile, scripted_server, reply, cause, says):
    make_hostile()
    scripted_server.add("/token", reply)

    with pytest.raises(TemporarilyUnavailable) as caught:
        access_token()

    assert isinstance(caught.value.__cause__, cause)
    token = assert_tokens_kept()
    assert says in token.last_error and says in str(caught.value)
    assert token.last_error_code == cause.code
    assert token.failure_count == 1 and token.next_attempt_at > timezone.now()
    assert len(scripted_server.requests_to("/token")) == 1
    assert scripted_server.requests_to("/elsewhere") == []  # a redirect is never followed
    assert OLD_REFRESH not in token.last_error and OLD_ACCESS not in token.last_error


def test_while_failing_a_still_valid_token_is_served(make_hostile, scripted_server):
    make_hostile(expired=False)  # 30 s left: inside the refresh leeway, not expired
    scripted_server.add("/token", Reply(status=502, body="Bad gateway"))

    assert access_token() == OLD_ACCESS
    assert access_token() == OLD_ACCESS  # backing off: no new request

    assert_tokens_kept()
    assert len(scripted_server.requests_to("/token")) == 1


def test_429_retry_after_is_honoured(make_hostile, scripted_server):
    make_hostile()
    scripted_server.add("/token", Reply(status=429, headers={"Retry-After": "120"}, body=""))
    before = timezone.now()

    with pytest.raises(TemporarilyUnavailable) as caught:
        access_token()
    for _ in range(3):
        with pytest.raises(TemporarilyUnavailable):
            access_token()

    token = assert_tokens_kept()
    assert token.next_attempt_at >= before + timedelta(seconds=120)
    assert caught.value.retry_after >= 120
    assert "rate limiting" in token.last_error
    assert len(scripted_server.requests_to("/token")) == 1


def test_connection_refused(make_hostile, unused_port, scripted_server):
    make_hostile(endpoint=f"http://127.0.0.1:{unused_port}/token")
    with pytest.raises(TemporarilyUnavailable) as caught:
        access_token()
    assert type(caught.value.__cause__) is TransportError
    assert "Cannot reach 127.0.0.1" in assert_tokens_kept().last_error


def test_slower_than_the_timeout(make_hostile, scripted_server, settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "READ_TIMEOUT": 0.3}
    make_hostile()
    scripted_server.add("/token", Reply(body=GOOD, delay=5))
    with pytest.raises(TemporarilyUnavailable) as caught:
        access_token()
    assert isinstance(caught.value.__cause__, ProviderTimeout)
    assert "did not answer in time" in assert_tokens_kept().last_error


TERMINAL = {
    "invalid_grant": (400, InvalidGrant),
    "invalid_client": (401, InvalidClient),
    "unauthorized_client": (400, UnauthorizedClient),
}


@pytest.mark.parametrize("error", TERMINAL)
def test_terminal_errors_need_reauthorization_and_stop_retrying(
    make_hostile, scripted_server, error
):
    status, cause = TERMINAL[error]
    make_hostile()
    scripted_server.default("/token", Reply(status=status, body={"error": error}))

    with pytest.raises(ReauthorizationRequired) as caught:
        access_token()
    for _ in range(5):
        with pytest.raises(ReauthorizationRequired):
            access_token()

    assert isinstance(caught.value.__cause__, cause)
    token = assert_tokens_kept(TokenStatus.NEEDS_REAUTH)  # kept for the record, not served
    assert token.last_error.startswith("Reauthorize the connection:")
    assert token.last_error_code == error
    assert len(scripted_server.requests_to("/token")) == 1


def test_invalid_grant_on_a_200(make_hostile, scripted_server):
    make_hostile()
    scripted_server.add("/token", Reply(body={"error": "invalid_grant"}))
    with pytest.raises(ReauthorizationRequired):
        access_token()
    assert_tokens_kept(TokenStatus.NEEDS_REAUTH)


def refreshed(scripted_server, body, **reply) -> Token:
    scripted_server.add("/token", Reply(body=body, **reply))
    access_token()
    token = the_token()
    assert token.status == TokenStatus.ACTIVE
    return token


def assert_lifetime(token: Token, before, seconds: int) -> None:
    """``expires_at`` is ``seconds`` after the request was sent (between ``before`` and now)."""
    assert before + timedelta(seconds=seconds) <= token.expires_at
    assert token.expires_at <= timezone.now() + timedelta(seconds=seconds)


@pytest.mark.parametrize("token_type", ["bearer", "BEARER", "Bearer"])
def test_token_type_is_compared_case_insensitively(make_hostile, scripted_server, token_type):
    make_hostile()
    token = refreshed(scripted_server, {**GOOD, "token_type": token_type})
    assert token.access_token.reveal() == "new-access" and token.token_type == "Bearer"


def test_expires_in_as_a_digit_string(make_hostile, scripted_server):
    make_hostile()
    before = timezone.now()
    token = refreshed(scripted_server, {**GOOD, "expires_in": "3600"})
    assert_lifetime(token, before, 3600)


def test_absurd_expires_in_is_clamped(make_hostile, scripted_server):
    make_hostile()
    token = refreshed(scripted_server, {**GOOD, "expires_in": 10**12})
    limit = timedelta(seconds=oauthconn_settings.MAX_TOKEN_LIFETIME)
    assert token.expires_at <= timezone.now() + limit


def test_missing_expires_in_uses_the_connections_fallback_lifetime(make_hostile, scripted_server):
    make_hostile(token_lifetime=120)
    before = timezone.now()
    token = refreshed(scripted_server, {"access_token": "new-access", "token_type": "Bearer"})
    assert_lifetime(token, before, 120)


def test_missing_expires_in_falls_back_to_the_setting(make_hostile, scripted_server, settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "DEFAULT_TOKEN_LIFETIME": 600}
    make_hostile()
    before = timezone.now()
    token = refreshed(scripted_server, {"access_token": "new-access", "token_type": "Bearer"})
    assert_lifetime(token, before, 600)


def test_form_encoded_token_response(make_hostile, scripted_server):
    make_hostile()
    body = "access_token=form-access&token_type=bearer&expires_in=3600&refresh_token=form-refresh"
    token = refreshed(
        scripted_server, body, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert token.access_token.reveal() == "form-access"
    assert token.refresh_token.reveal() == "form-refresh"


def test_the_admin_shows_the_reason(make_hostile, scripted_server, staff_client):
    make_hostile()
    scripted_server.add("/token", Reply(body="<html>Login</html>"))
    with pytest.raises(TemporarilyUnavailable):
        access_token()
    token = the_token()
    for url in (
        f"/admin/oauthconn/token/{token.pk}/change/",
        f"/admin/oauthconn/connection/{token.connection_id}/change/",
    ):
        page = staff_client.get(url)
        assert page.status_code == 200
        assert "Unexpected HTML response from the token endpoint" in page.content.decode()
        assert OLD_ACCESS not in page.content.decode()

"""Token requests over real HTTP against the scripted server (SECURITY R22-R25, R39, R44, §2.2)."""

from __future__ import annotations

import base64
import itertools
import socket
from datetime import UTC, datetime, timedelta

import pytest

from oauthconn.exceptions import (
    ConfigurationError,
    InsecureURL,
    InvalidGrant,
    InvalidProviderResponse,
    ProviderTimeout,
    ProviderUnavailable,
    ResponseTooLarge,
    TransportError,
)
from oauthconn.http import build_client
from oauthconn.oauth.client_auth import ClientCredentials
from oauthconn.oauth.token import client_credentials_grant, exchange_code, refresh_token_grant
from tests.scripted_server import Reply, ScriptedServer

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BASIC = ClientCredentials("client-1", "s3cret", "client_secret_basic")
POST = ClientCredentials("client-1", "s3cret", "client_secret_post")
TOKENS = {"access_token": "AT", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "RT"}


@pytest.fixture
def configure(settings):
    def apply(**values):
        settings.OAUTHCONN = {**settings.OAUTHCONN, **values}

    return apply


@pytest.fixture
def token_url(scripted_server):
    scripted_server.default("/token", Reply(body=TOKENS))
    return scripted_server.url("/token")


@pytest.fixture
def http():
    with build_client() as client:
        yield client


def exchange(http, url, **overrides):
    arguments = dict(
        code="the-code",
        redirect_uri="https://site.example/cb/crm/",
        code_verifier="v" * 43,
        credentials=BASIC,
        now=NOW,
    )
    return exchange_code(http, url, **{**arguments, **overrides})


def only_request(server: ScriptedServer):
    assert len(server.requests) == 1, "exactly one request, never a retry (R24)"
    return server.requests[0]


def flat_form(request) -> dict[str, str]:
    form = request.form()
    assert all(len(values) == 1 for values in form.values()), "no parameter twice"
    return {name: values[0] for name, values in form.items()}


def test_r22_code_exchange_is_a_well_formed_post(http, scripted_server, token_url):
    tokens = exchange(http, token_url)
    request = only_request(scripted_server)
    assert request.method == "POST"
    assert request.raw_query == ""  # nothing in the URL
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["accept"] == "application/json"
    assert flat_form(request) == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": "https://site.example/cb/crm/",
        "code_verifier": "v" * 43,
    }
    basic = base64.b64decode(request.headers["authorization"].removeprefix("Basic "))
    assert basic == b"client-1:s3cret"
    assert tokens.access_token == "AT" and tokens.refresh_token == "RT"
    assert tokens.expires_at == NOW + timedelta(seconds=3600)


def test_client_secret_post_puts_credentials_in_the_body(http, scripted_server, token_url):
    exchange(http, token_url, credentials=POST)
    request = only_request(scripted_server)
    assert "authorization" not in request.headers
    assert flat_form(request)["client_id"] == "client-1"
    assert flat_form(request)["client_secret"] == "s3cret"
    assert request.body.count(b"s3cret") == 1


def test_code_exchange_without_pkce(http, scripted_server, token_url):
    exchange(http, token_url, code_verifier=None)
    assert "code_verifier" not in flat_form(only_request(scripted_server))


def test_expiry_counts_from_when_the_request_was_sent(http, token_url):
    before = datetime.now(UTC)
    tokens = exchange(http, token_url, now=None)
    assert before + timedelta(seconds=3600) <= tokens.expires_at
    assert tokens.expires_at <= datetime.now(UTC) + timedelta(seconds=3600)


def test_r39_refresh_sends_no_redirect_uri_or_verifier(http, scripted_server, token_url):
    tokens = refresh_token_grant(
        http, token_url, refresh_token="RT-old", credentials=BASIC, now=NOW
    )
    form = flat_form(only_request(scripted_server))
    assert form == {"grant_type": "refresh_token", "refresh_token": "RT-old"}
    assert "authorization" in only_request(scripted_server).headers
    assert tokens.access_token == "AT"


def test_refresh_may_narrow_the_scope(http, scripted_server, token_url):
    refresh_token_grant(http, token_url, refresh_token="RT", credentials=POST, scope="read")
    assert flat_form(only_request(scripted_server))["scope"] == "read"


@pytest.mark.parametrize(("scope", "expected"), [("read write", {"scope": "read write"}), ("", {})])
def test_r44_client_credentials(http, scripted_server, token_url, scope, expected):
    client_credentials_grant(http, token_url, credentials=BASIC, scope=scope, now=NOW)
    assert flat_form(only_request(scripted_server)) == {
        "grant_type": "client_credentials",
        **expected,
    }


def test_extra_parameters_are_sent(http, scripted_server, token_url):
    client_credentials_grant(
        http,
        token_url,
        credentials=BASIC,
        scope="",
        extra_params={"audience": "https://api.example"},
    )
    assert flat_form(only_request(scripted_server))["audience"] == "https://api.example"


@pytest.mark.parametrize("name", ["grant_type", "code", "redirect_uri", "client_secret", "scope"])
def test_extra_parameters_cannot_override_protocol_ones(http, scripted_server, token_url, name):
    with pytest.raises(ConfigurationError, match=repr(name)):
        exchange(http, token_url, extra_params={name: "evil"})
    assert scripted_server.requests == []


def test_r25_redirect_is_an_error_and_the_target_gets_nothing(http, scripted_server):
    with ScriptedServer() as attacker:
        attacker.default("/token", Reply(body=TOKENS))
        scripted_server.default(
            "/token", Reply(status=307, headers={"Location": attacker.url("/token")})
        )
        with pytest.raises(InvalidProviderResponse, match="redirects are not followed"):
            exchange(http, scripted_server.url("/token"), credentials=POST)
        assert attacker.requests == []
    assert len(scripted_server.requests) == 1


def test_t25_slow_server_times_out_once(configure, scripted_server):
    configure(READ_TIMEOUT=0.2)
    scripted_server.default("/token", Reply(body=TOKENS, delay=3))
    with build_client() as client, pytest.raises(ProviderTimeout):
        exchange(client, scripted_server.url("/token"))
    only_request(scripted_server)


def test_t24_endless_body_is_cut_at_the_cap(configure, http, scripted_server):
    configure(MAX_RESPONSE_BYTES=64 * 1024)
    scripted_server.default(
        "/token",
        Reply(headers={"Content-Type": "application/json"}, chunks=itertools.repeat(b" " * 8192)),
    )
    with pytest.raises(ResponseTooLarge):
        exchange(http, scripted_server.url("/token"))


def test_t21_t22_unavailable_with_retry_after_is_not_retried(http, scripted_server):
    scripted_server.default(
        "/token", Reply(status=503, headers={"Retry-After": "17"}, body="<h1>Maintenance</h1>")
    )
    with pytest.raises(ProviderUnavailable) as caught:
        exchange(http, scripted_server.url("/token"))
    assert caught.value.retry_after == 17
    only_request(scripted_server)


def test_t18_invalid_grant_over_http(http, scripted_server):
    scripted_server.default("/token", Reply(status=400, body={"error": "invalid_grant"}))
    with pytest.raises(InvalidGrant):
        exchange(http, scripted_server.url("/token"))


def test_t26_connection_refused(http):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransportError, match="Cannot reach 127.0.0.1"):
        exchange(http, f"http://127.0.0.1:{port}/token")


def test_token_endpoint_must_be_https(http):
    with pytest.raises(InsecureURL):
        exchange(http, "http://as.example/token")


def test_the_code_never_appears_in_error_messages(http, scripted_server):
    scripted_server.default("/token", Reply(status=400, body="bad code the-code"))
    with pytest.raises(Exception) as caught:
        exchange(http, scripted_server.url("/token"))
    assert "the-code" not in str(caught.value)

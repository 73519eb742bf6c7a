"""oauthconn.oauth.revoke: RFC 7009 revocation (SECURITY R45, §2.6)."""

from __future__ import annotations

import base64

import pytest

from oauthconn.exceptions import (
    InvalidClient,
    InvalidProviderResponse,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
)
from oauthconn.http import build_client
from oauthconn.oauth.client_auth import ClientCredentials
from oauthconn.oauth.revoke import revoke_token
from tests.scripted_server import Reply, ScriptedServer

CREDS = ClientCredentials("client-1", "s3cret", "client_secret_basic")


@pytest.fixture
def http():
    with build_client() as client:
        yield client


def revoke(http, server: ScriptedServer, reply: Reply) -> bool:
    server.default("/revoke", reply)
    return revoke_token(
        http, server.url("/revoke"), token="RT", token_type_hint="refresh_token", credentials=CREDS
    )


@pytest.mark.parametrize(
    "reply",
    [
        Reply(),
        Reply(body={"anything": True}),
        Reply(body="<html>ok</html>", headers={"Content-Type": "text/html"}),
        Reply(status=204),
    ],
)
def test_v1_success_whatever_the_body(http, scripted_server, reply):
    assert revoke(http, scripted_server, reply) is True
    (request,) = scripted_server.requests
    assert request.method == "POST" and request.raw_query == ""
    assert request.form() == {"token": ["RT"], "token_type_hint": ["refresh_token"]}
    basic = base64.b64decode(request.headers["authorization"].removeprefix("Basic "))
    assert basic == b"client-1:s3cret"


def test_v2_unsupported_token_type_is_false(http, scripted_server):
    reply = Reply(status=400, body={"error": "unsupported_token_type"})
    assert revoke(http, scripted_server, reply) is False


@pytest.mark.parametrize(("headers", "retry_after"), [({"Retry-After": "60"}, 60), ({}, None)])
def test_v3_503_is_unavailable(http, scripted_server, headers, retry_after):
    with pytest.raises(ProviderUnavailable) as caught:
        revoke(http, scripted_server, Reply(status=503, headers=headers))
    assert caught.value.retry_after == retry_after
    assert "revocation endpoint" in str(caught.value)


def test_429_is_unavailable(http, scripted_server):
    with pytest.raises(ProviderUnavailable):
        revoke(http, scripted_server, Reply(status=429, headers={"Retry-After": "5"}))


def test_v4_invalid_client(http, scripted_server):
    with pytest.raises(InvalidClient):
        revoke(http, scripted_server, Reply(status=401, body={"error": "invalid_client"}))


def test_other_errors(http, scripted_server):
    with pytest.raises(ProviderError, match=r"revocation endpoint .*\(HTTP 400\)"):
        revoke(http, scripted_server, Reply(status=400, body="<h1>Bad</h1>"))


def test_redirect_is_not_followed(http, scripted_server):
    location = scripted_server.url("/elsewhere")
    with pytest.raises(InvalidProviderResponse, match="redirect"):
        revoke(http, scripted_server, Reply(status=308, headers={"Location": location}))
    assert scripted_server.requests_to("/elsewhere") == []


def test_v5_timeout_propagates_as_transport_error(settings, scripted_server):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "READ_TIMEOUT": 0.2}
    with build_client() as client, pytest.raises(ProviderTimeout):
        revoke(client, scripted_server, Reply(delay=3))


def test_public_client_revocation_sends_client_id(http, scripted_server):
    scripted_server.default("/revoke", Reply())
    creds = ClientCredentials("public-1", None, "none")
    assert revoke_token(
        http, scripted_server.url("/revoke"), token="AT", token_type_hint="", credentials=creds
    )
    assert scripted_server.requests[0].form() == {"token": ["AT"], "client_id": ["public-1"]}

"""RFC 9126 request building and response parsing (oauthconn.oauth.par), as pure functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from oauthconn.exceptions import (
    ConfigurationError,
    InvalidClient,
    InvalidProviderResponse,
    ProviderError,
    ProviderUnavailable,
)
from oauthconn.oauth.authorize import authorization_parameters
from oauthconn.oauth.client_auth import ClientCredentials
from oauthconn.oauth.par import (
    parse_push_response,
    push_authorization_request,
    pushed_authorization_url,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
JSON = {"Content-Type": "application/json"}


def parse(status: int, body: object, headers: dict[str, str] | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_push_response(status, headers or JSON, raw, sent_at=NOW)


def test_a_201_gives_the_reference_and_its_expiry():
    pushed = parse(201, {"request_uri": "urn:ietf:params:oauth:request_uri:abc", "expires_in": 60})
    assert pushed.request_uri == "urn:ietf:params:oauth:request_uri:abc"
    assert pushed.expires_at == NOW + timedelta(seconds=60)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"request_uri": "urn:x"}, "no expires_in"),
        ({"request_uri": "urn:x", "expires_in": 0}, "invalid expires_in"),
        ({"request_uri": "urn:x", "expires_in": "60"}, "invalid expires_in"),
        ({"request_uri": "urn:x", "expires_in": True}, "invalid expires_in"),
        ({"expires_in": 60}, "no request_uri"),
        ({"request_uri": 7, "expires_in": 60}, "no request_uri"),
        ({"request_uri": "u" * 3000, "expires_in": 60}, "too long"),
    ],
)
def test_an_incomplete_success_is_an_invalid_response(body, reason):
    with pytest.raises(InvalidProviderResponse, match=reason) as caught:
        parse(201, body)
    assert caught.value.status == 201


def test_an_html_page_is_an_invalid_response():
    with pytest.raises(InvalidProviderResponse, match="HTML"):
        parse(201, b"<html>hi</html>", {"Content-Type": "text/html"})


@pytest.mark.parametrize(
    ("status", "body", "kind", "words"),
    [
        (401, {"error": "invalid_client"}, InvalidClient, "client credentials"),
        (400, {"error": "invalid_request", "error_description": "bad"}, ProviderError, "bad"),
        (503, b"", ProviderUnavailable, "temporarily unavailable"),
        (302, b"", InvalidProviderResponse, "redirected"),
    ],
)
def test_refusals_are_the_token_endpoints_typed_errors(status, body, kind, words):
    with pytest.raises(kind, match=words):
        parse(status, body)


def test_the_browser_url_carries_only_the_client_and_the_reference():
    url = pushed_authorization_url(
        "https://as.example/authorize?tenant=a", client_id="c 1", request_uri="urn:x:1"
    )
    assert url == "https://as.example/authorize?tenant=a&client_id=c%201&request_uri=urn%3Ax%3A1"


def test_the_pushed_parameters_are_the_authorization_requests_with_the_resource():
    params = authorization_parameters(
        "https://as.example/authorize",
        client_id="c",
        redirect_uri="https://site/cb",
        scope="read",
        state="s",
        code_challenge="x",
        resource="https://api.example/",
    )
    assert params["resource"] == "https://api.example/"
    assert params["code_challenge_method"] == "S256"


def test_an_extra_resource_may_not_repeat_the_connections():
    with pytest.raises(ConfigurationError, match="repeat"):
        authorization_parameters(
            "https://as.example/authorize",
            client_id="c",
            redirect_uri="https://site/cb",
            scope="",
            state="s",
            extra_params={"resource": "https://other/"},
            resource="https://api.example/",
        )


def test_a_push_may_not_carry_a_request_uri():
    with httpx.Client() as client, pytest.raises(ConfigurationError, match="request_uri"):
        push_authorization_request(
            client,
            "https://as.example/par",
            {"request_uri": "urn:x"},
            credentials=ClientCredentials("c", None, "none"),
        )


def test_the_extra_parameter_rule_still_refuses_request_uri():
    with pytest.raises(ConfigurationError, match="protocol parameter"):
        authorization_parameters(
            "https://as.example/authorize",
            client_id="c",
            redirect_uri="https://site/cb",
            scope="",
            state="s",
            extra_params={"request_uri": "urn:x"},
        )

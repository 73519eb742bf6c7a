"""RFC 7591 / RFC 9728 pure functions: registration bodies and answers, metadata parsing."""

from __future__ import annotations

import json

import pytest

from oauthconn.exceptions import DiscoveryFailed, ProviderUnavailable, RegistrationRefused
from oauthconn.oauth.registration import (
    choose_auth_method,
    parse_registration_response,
    registration_request,
)
from oauthconn.oauth.resource_metadata import (
    challenge_metadata_url,
    parse_resource_metadata,
    resource_metadata_url,
)

JSON = {"Content-Type": "application/json"}
ASKED = {"token_endpoint_auth_method": "client_secret_basic"}


def parse(status: int, body: object):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_registration_response(status, JSON, raw, requested=ASKED)


def test_a_registration_keeps_every_issued_value_and_hides_its_secrets():
    found = parse(
        201,
        {
            "client_id": "c1",
            "client_secret": "s3cret",
            "registration_access_token": "rat-value",
            "registration_client_uri": "https://as.example/reg/c1",
        },
    )
    assert (found.client_id, found.client_secret) == ("c1", "s3cret")
    assert found.registration_access_token == "rat-value"
    assert found.token_endpoint_auth_method == "client_secret_basic"
    assert "s3cret" not in repr(found) and "rat-value" not in repr(found)


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (400, {"error": "invalid_client_metadata", "error_description": "bad scope"}, "bad scope"),
        (401, b"", "refused"),
        (201, {"client_secret": "x"}, "no client_id"),
        (201, {"client_id": "c"}, "without a client secret"),
        (
            201,
            {"client_id": "c", "client_secret": "x", "registration_client_uri": "ftp://x"},
            "https",
        ),
    ],
)
def test_refusals_and_unusable_answers_are_registration_refused(status, body, words):
    with pytest.raises(RegistrationRefused, match=words):
        parse(status, body)


def test_a_down_registration_endpoint_is_temporarily_unavailable():
    with pytest.raises(ProviderUnavailable):
        parse(503, b"")


def test_the_registered_method_prefers_a_secret_then_none():
    assert choose_auth_method(["none", "client_secret_post"]) == "client_secret_post"
    assert choose_auth_method(["private_key_jwt", "none"]) == "none"
    assert choose_auth_method([]) == "client_secret_basic"
    body = registration_request(
        redirect_uri="https://site/cb/", client_name="n", auth_method="none", scope="read"
    )
    assert body["redirect_uris"] == ["https://site/cb/"] and body["scope"] == "read"


def test_the_metadata_url_is_inserted_before_the_path():
    assert resource_metadata_url("https://api.example/mcp/") == (
        "https://api.example/.well-known/oauth-protected-resource/mcp"
    )
    assert resource_metadata_url("https://api.example") == (
        "https://api.example/.well-known/oauth-protected-resource"
    )


@pytest.mark.parametrize(
    ("header", "url"),
    [
        ('Bearer resource_metadata="https://a/m"', "https://a/m"),
        ('Bearer realm="x", error="invalid_token", resource_metadata="https://a/m"', "https://a/m"),
        ("bearer resource_metadata=https://a/m", "https://a/m"),
        ('Basic realm="x"', None),
        ('Bearer realm="x"', None),
    ],
)
def test_the_challenge_names_the_metadata(header, url):
    assert challenge_metadata_url(header) == url


def test_metadata_for_another_resource_or_without_servers_is_refused():
    with pytest.raises(DiscoveryFailed, match="§3.3"):
        parse_resource_metadata(
            {"resource": "https://b/", "authorization_servers": []}, "https://a/"
        )
    with pytest.raises(DiscoveryFailed, match="names no authorization server"):
        parse_resource_metadata({"resource": "https://a/"}, "https://a/")
    with pytest.raises(DiscoveryFailed, match="must use https"):
        parse_resource_metadata(
            {"resource": "https://a/", "authorization_servers": ["http://as.example/"]},
            "https://a/",
        )

"""oauthconn.oauth.client_auth: RFC 6749 §2.3.1 client authentication (SECURITY R23)."""

from __future__ import annotations

import base64

import pytest

from oauthconn.exceptions import ConfigurationError
from oauthconn.oauth.client_auth import AUTH_METHODS, ClientCredentials, apply_client_auth

SECRET = "p:w+d/%é"


def apply(creds: ClientCredentials) -> tuple[dict[str, str], dict[str, str]]:
    data, headers = {"grant_type": "client_credentials"}, {}
    apply_client_auth(creds, data, headers)
    return data, headers


def test_r23_basic_form_encodes_before_base64():
    data, headers = apply(ClientCredentials("my client", SECRET, "client_secret_basic"))
    scheme, encoded = headers["Authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode("ascii") == "my+client:p%3Aw%2Bd%2F%25%C3%A9"
    assert data == {"grant_type": "client_credentials"}  # nothing in the body


def test_r23_post_puts_the_secret_in_the_body_once():
    creds = ClientCredentials("client-1", SECRET, "client_secret_post")
    data, headers = apply(creds)
    assert headers == {}
    assert data == {
        "grant_type": "client_credentials",
        "client_id": "client-1",
        "client_secret": SECRET,
    }
    assert list(data.values()).count(SECRET) == 1


def test_public_client_sends_only_its_id():
    data, headers = apply(ClientCredentials("client-1", "ignored", "none"))
    assert headers == {}
    assert data == {"grant_type": "client_credentials", "client_id": "client-1"}


def test_unknown_method_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="'private_key_jwt'"):
        apply(ClientCredentials("client-1", SECRET, "private_key_jwt"))


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
@pytest.mark.parametrize("secret", [None, ""])
def test_secret_methods_need_a_secret(method, secret):
    with pytest.raises(ConfigurationError, match="secret"):
        apply(ClientCredentials("client-1", secret, method))


@pytest.mark.parametrize(
    ("data", "headers"),
    [
        ({"client_secret": "x"}, {}),
        ({"client_assertion": "x"}, {}),
        ({}, {"authorization": "Basic x"}),
    ],
)
def test_exactly_one_method_per_request(data, headers):
    creds = ClientCredentials("client-1", SECRET, "client_secret_basic")
    with pytest.raises(ConfigurationError, match="already"):
        apply_client_auth(creds, data, headers)


def test_repr_never_shows_the_secret():
    creds = ClientCredentials("client-1", "hunter2", "client_secret_post")
    assert "hunter2" not in repr(creds)
    assert "hunter2" not in str(creds)
    assert "client-1" in repr(creds)


def test_methods_are_a_registry():
    assert set(AUTH_METHODS) == {
        "client_secret_basic",
        "client_secret_post",
        "none",
        "private_key_jwt",
    }

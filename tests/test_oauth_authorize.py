"""oauthconn.oauth.authorize: the authorization request URL (RFC 6749 §4.1.1, R13)."""

from __future__ import annotations

from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest

from oauthconn.exceptions import ConfigurationError
from oauthconn.oauth.authorize import (
    PROTOCOL_PARAMETERS,
    build_authorization_url,
    check_extra_parameters,
)

BASE = dict(client_id="client-1", redirect_uri="https://site.example/cb/crm/", state="S")


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def test_code_flow_parameters():
    url = build_authorization_url(
        "https://as.example/authorize", scope="read write", code_challenge="CH", nonce="N", **BASE
    )
    assert url.startswith("https://as.example/authorize?")
    assert query(url) == {
        "response_type": ["code"],
        "client_id": ["client-1"],
        "redirect_uri": ["https://site.example/cb/crm/"],
        "scope": ["read write"],
        "state": ["S"],
        "code_challenge": ["CH"],
        "code_challenge_method": ["S256"],
        "nonce": ["N"],
    }
    assert "scope=read%20write" in url  # %20 decodes as a space everywhere


def test_without_pkce_nonce_or_scope():
    url = build_authorization_url("https://as.example/authorize", scope="", **BASE)
    assert set(query(url)) == {"response_type", "client_id", "redirect_uri", "state"}


def test_existing_query_is_kept_verbatim():
    url = build_authorization_url("https://as.example/authorize?tenant=a%2Fb&p=", scope="x", **BASE)
    assert urlsplit(url).query.startswith("tenant=a%2Fb&p=&")
    pairs = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    assert pairs[:2] == [("tenant", "a/b"), ("p", "")]


def test_extra_parameters_are_appended():
    url = build_authorization_url(
        "https://as.example/authorize",
        scope="x",
        extra_params={"access_type": "offline", "audience": "https://api.example/"},
        **BASE,
    )
    assert query(url)["access_type"] == ["offline"]
    assert query(url)["audience"] == ["https://api.example/"]


@pytest.mark.parametrize("name", sorted(PROTOCOL_PARAMETERS) + ["Redirect_URI", "STATE"])
def test_extra_parameters_may_not_set_protocol_parameters(name):
    with pytest.raises(ConfigurationError, match=repr(name)):
        build_authorization_url(
            "https://as.example/authorize", scope="x", extra_params={name: "evil"}, **BASE
        )
    with pytest.raises(ConfigurationError, match=repr(name)):
        check_extra_parameters({name: "evil"})


def test_extra_parameters_may_not_repeat_the_endpoints_query():
    with pytest.raises(ConfigurationError, match="'tenant'"):
        build_authorization_url(
            "https://as.example/authorize?tenant=a",
            scope="x",
            extra_params={"tenant": "b"},
            **BASE,
        )
    with pytest.raises(ConfigurationError, match="'tenant'"):
        check_extra_parameters({"tenant": "b"}, endpoint="https://as.example/authorize?tenant=a")
    check_extra_parameters({"tenant": "b"})


def test_endpoint_query_may_not_set_protocol_parameters():
    with pytest.raises(ConfigurationError, match="'client_id'"):
        build_authorization_url("https://as.example/authorize?client_id=x", scope="", **BASE)


def test_endpoint_with_fragment_is_refused():
    with pytest.raises(ConfigurationError, match="fragment"):
        build_authorization_url("https://as.example/authorize#x", scope="", **BASE)


@pytest.mark.parametrize("params", [{"": "x"}, {"prompt": 1}, {3: "x"}])
def test_malformed_extra_parameters(params):
    with pytest.raises(ConfigurationError):
        check_extra_parameters(params)


def test_valid_extra_parameters_pass():
    check_extra_parameters({"prompt": "consent", "access_type": "offline", "resource": "r"})

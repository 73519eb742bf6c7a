"""Discovery from both metadata documents (defect 9b): the OpenID one and the RFC 8414 one.

A scripted server plays providers whose two documents complement each other, disagree, or
where one is missing or broken; ``test_discovery_live.py`` has django-oauth-toolkit.
"""

from __future__ import annotations

import pytest

from oauthconn.exceptions import DiscoveryFailed
from oauthconn.http import build_client
from oauthconn.oauth.discovery import discover
from tests.scripted_server import Reply
from tests.test_discovery import document

OPENID = "/.well-known/openid-configuration"
RFC8414 = "/.well-known/oauth-authorization-server"


@pytest.fixture
def issuer(scripted_server) -> str:
    return scripted_server.url("").rstrip("/")


def run(issuer: str):
    with build_client() as client:
        return discover(client, issuer)


def serve(scripted_server, openid: dict | Reply | None, rfc8414: dict | Reply | None) -> None:
    """Serve the two documents at the issuer's root (None: a 404)."""
    for path, body in ((OPENID, openid), (RFC8414, rfc8414)):
        if body is not None:
            scripted_server.default(path, body if isinstance(body, Reply) else Reply(body=body))


def test_each_document_fills_what_the_other_leaves_out(scripted_server, issuer):
    # As django-oauth-toolkit: revocation and grant types only in the RFC 8414 document,
    # userinfo and signing algorithms only in the OpenID one.
    openid = document(issuer, revocation_endpoint=None, grant_types_supported=None)
    rfc8414 = document(
        issuer,
        userinfo_endpoint=None,
        id_token_signing_alg_values_supported=None,
        grant_types_supported=["authorization_code", "client_credentials"],
    )
    serve(scripted_server, openid, rfc8414)

    meta = run(issuer)

    assert meta.revocation_endpoint == f"{issuer}/revoke"
    assert meta.supported_grant_types == ("authorization_code", "client_credentials")
    assert meta.userinfo_endpoint == f"{issuer}/userinfo"
    assert meta.id_token_signing_algs == ("RS256", "ES256")
    assert meta.raw["revocation_endpoint"] == f"{issuer}/revoke"


def test_other_members_named_by_both_take_the_openid_documents_value(scripted_server, issuer):
    openid = document(issuer, scopes_supported=["openid", "read"])
    # A null member is one the document leaves out, not a value that wins over the other's.
    openid["revocation_endpoint"] = None
    rfc8414 = document(
        issuer, scopes_supported=["read"], code_challenge_methods_supported=["plain", "S256"]
    )
    serve(scripted_server, openid, rfc8414)

    meta = run(issuer)

    assert meta.scopes_supported == ("openid", "read")
    assert meta.code_challenge_methods == ("S256",)
    assert meta.revocation_endpoint == f"{issuer}/revoke"


def test_a_missing_second_document_is_not_an_error(scripted_server, issuer):
    serve(scripted_server, document(issuer, revocation_endpoint=None), None)

    meta = run(issuer)

    assert meta.revocation_endpoint == ""
    assert [r.path for r in scripted_server.requests] == [OPENID, RFC8414]


def test_only_the_rfc8414_document_is_enough(scripted_server, issuer):
    serve(scripted_server, None, document(issuer))
    assert run(issuer).revocation_endpoint == f"{issuer}/revoke"


def test_the_rfc8414_document_appended_to_a_path_issuer_is_found(scripted_server):
    # Servers mounted under a prefix (DOT at /o/) answer the appended form only.
    issuer = scripted_server.url("/o")
    scripted_server.default(f"/o{RFC8414}", Reply(body=document(issuer)))

    meta = run(issuer)

    assert meta.revocation_endpoint == f"{issuer}/revoke"
    assert [r.path for r in scripted_server.requests] == [
        f"/o{OPENID}",
        f"{RFC8414}/o",
        f"/o{RFC8414}",
    ]


@pytest.mark.parametrize(
    "member", ["token_endpoint", "revocation_endpoint", "authorization_endpoint", "jwks_uri"]
)
def test_endpoints_that_differ_between_the_documents_are_refused(scripted_server, issuer, member):
    elsewhere = scripted_server.url("/elsewhere", host="localhost")
    serve(scripted_server, document(issuer), document(issuer, **{member: elsewhere}))

    with pytest.raises(DiscoveryFailed) as caught:
        run(issuer)

    message = str(caught.value)
    assert f"{member} is '{issuer}/" in message
    assert f"but '{elsewhere}' in the RFC 8414 one" in message
    assert "enter the endpoints by hand" in message


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (
            lambda issuer: Reply(
                body="<html>Welcome</html>", headers={"Content-Type": "text/html"}
            ),
            f"The metadata at .*{RFC8414} is not JSON",
        ),
        (
            lambda issuer: Reply(body=document("https://other.example")),
            f"'https://other.example' is not the expected .*\\(in .*{RFC8414}\\)",
        ),
        (
            lambda issuer: Reply(body=document(issuer, revocation_endpoint="http://as.example/r")),
            f"revocation_endpoint must use https.*\\(in .*{RFC8414}\\)",
        ),
        (lambda issuer: Reply(status=503, body="busy"), f"{RFC8414} answered HTTP 503"),
    ],
    ids=["html", "other-issuer", "insecure-endpoint", "http-503"],
)
def test_a_broken_second_document_fails_discovery(scripted_server, issuer, broken, message):
    serve(scripted_server, document(issuer, revocation_endpoint=None), broken(issuer))

    with pytest.raises(DiscoveryFailed, match=message):
        run(issuer)


def test_a_broken_first_document_fails_even_when_the_second_is_fine(scripted_server, issuer):
    serve(scripted_server, Reply(body=document("https://other.example")), document(issuer))
    with pytest.raises(DiscoveryFailed, match=f"not the expected .*\\(in .*{OPENID}\\)"):
        run(issuer)


def test_required_endpoints_may_come_from_either_document(scripted_server, issuer):
    serve(
        scripted_server,
        document(issuer, token_endpoint=None),
        {"issuer": issuer, "token_endpoint": f"{issuer}/token"},
    )
    assert run(issuer).token_endpoint == f"{issuer}/token"


def test_an_endpoint_missing_from_both_documents_is_still_refused(scripted_server, issuer):
    serve(scripted_server, document(issuer, token_endpoint=None), {"issuer": issuer})
    with pytest.raises(DiscoveryFailed, match="The metadata has no token_endpoint"):
        run(issuer)

"""Discovery (RFC 8414, OIDC Discovery; SECURITY R3, catalogue §2.5) against real HTTP endpoints.

The happy path against django-oauth-toolkit is in ``test_oidc_live.py``; here a scripted server
plays misbehaving providers.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from oauthconn.exceptions import DiscoveryFailed
from oauthconn.flows.discovery import provider_fields_from_metadata, refresh_discovery
from oauthconn.http import build_client
from oauthconn.models import Connection, Provider
from oauthconn.oauth.discovery import discover, metadata_urls, parse_metadata
from tests.scripted_server import Reply


def document(issuer: str, **overrides) -> dict:
    doc = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "jwks_uri": f"{issuer}/jwks",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "revocation_endpoint": f"{issuer}/revoke",
        "scopes_supported": ["openid", "email"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "authorization_response_iss_parameter_supported": True,
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def run(server, issuer):
    with build_client() as client:
        return discover(client, issuer)


# --- where the document is looked for -------------------------------------------------------


def test_well_known_urls_append_for_oidc_and_insert_then_append_for_rfc8414():
    assert metadata_urls("https://as.example") == [
        "https://as.example/.well-known/openid-configuration"
    ] + ["https://as.example/.well-known/oauth-authorization-server"]
    assert metadata_urls("https://as.example/tenant/a") == [
        "https://as.example/tenant/a/.well-known/openid-configuration",
        "https://as.example/.well-known/oauth-authorization-server/tenant/a",
        "https://as.example/tenant/a/.well-known/oauth-authorization-server",
    ]


def test_openid_configuration_fills_every_field(scripted_server):
    issuer = scripted_server.url("").rstrip("/")
    scripted_server.add("/.well-known/openid-configuration", Reply(body=document(issuer)))

    meta = run(scripted_server, issuer)

    assert meta.issuer == issuer
    assert meta.token_endpoint == f"{issuer}/token"
    assert meta.jwks_uri == f"{issuer}/jwks"
    assert meta.userinfo_endpoint == f"{issuer}/userinfo"
    assert meta.code_challenge_methods == ("S256",)
    assert meta.token_endpoint_auth_methods == ("client_secret_basic", "private_key_jwt")
    assert meta.id_token_signing_algs == ("RS256", "ES256")
    assert meta.supported_grant_types == ("authorization_code", "refresh_token")
    assert meta.scopes_supported == ("openid", "email")
    assert meta.sends_issuer is True
    assert meta.raw["issuer"] == issuer


def test_rfc8414_path_insertion_is_used_when_openid_configuration_is_missing(scripted_server):
    issuer = scripted_server.url("/tenant-a")
    scripted_server.add(
        "/.well-known/oauth-authorization-server/tenant-a", Reply(body=document(issuer))
    )

    meta = run(scripted_server, issuer)

    assert meta.token_endpoint == f"{issuer}/token"
    assert [r.path for r in scripted_server.requests] == [
        "/tenant-a/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/tenant-a",
    ]


def test_absent_members_take_the_rfc8414_defaults(scripted_server):
    issuer = scripted_server.url("").rstrip("/")
    doc = document(
        issuer,
        grant_types_supported=None,
        token_endpoint_auth_methods_supported=None,
        authorization_response_iss_parameter_supported=None,
        code_challenge_methods_supported=None,
    )
    scripted_server.add("/.well-known/openid-configuration", Reply(body=doc))

    meta = run(scripted_server, issuer)

    assert meta.supported_grant_types == ("authorization_code", "implicit")
    assert meta.token_endpoint_auth_methods == ("client_secret_basic",)
    assert meta.code_challenge_methods == ()
    assert meta.sends_issuer is False


# --- failures: each names its problem (M1-M5) ------------------------------------------------


def test_issuer_mismatch_fails(scripted_server):
    issuer = scripted_server.url("").rstrip("/")
    scripted_server.add(
        "/.well-known/openid-configuration", Reply(body=document("https://evil.example"))
    )
    with pytest.raises(DiscoveryFailed, match="'https://evil.example' is not the expected"):
        run(scripted_server, issuer)


def test_issuer_differing_by_a_trailing_slash_fails(scripted_server):
    issuer = scripted_server.url("").rstrip("/")
    doc = {**document(issuer), "issuer": issuer + "/"}
    scripted_server.add("/.well-known/openid-configuration", Reply(body=doc))
    with pytest.raises(DiscoveryFailed, match="differ only by a trailing slash"):
        run(scripted_server, issuer)


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(body="<html>Sign in</html>", headers={"Content-Type": "text/html"}), "not JSON"),
        (Reply(body=["an", "array"]), "JSON but not an object"),
        (Reply(status=500, body="oops"), "answered HTTP 500"),
        (Reply(status=302, headers={"Location": "https://other.example/"}), "redirects"),
    ],
)
def test_unusable_answers_fail_with_a_message(scripted_server, reply, message):
    issuer = scripted_server.url("").rstrip("/")
    scripted_server.add("/.well-known/openid-configuration", reply)
    with pytest.raises(DiscoveryFailed, match=message):
        run(scripted_server, issuer)


def test_no_document_anywhere_names_the_urls_tried(scripted_server):
    issuer = scripted_server.url("").rstrip("/")
    with pytest.raises(DiscoveryFailed, match="No metadata document was found"):
        run(scripted_server, issuer)


def test_unreachable_issuer_fails(unused_port):
    with pytest.raises(DiscoveryFailed, match="Cannot fetch the metadata from 127.0.0.1"):
        with build_client() as client:
            discover(client, f"http://127.0.0.1:{unused_port}")


def test_oversized_document_fails(scripted_server, settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "MAX_RESPONSE_BYTES": 2000}
    issuer = scripted_server.url("").rstrip("/")
    doc = document(issuer, scopes_supported=["s" * 50] * 100)
    scripted_server.add("/.well-known/openid-configuration", Reply(body=doc))
    with pytest.raises(DiscoveryFailed, match="exceeded 2000 bytes"):
        run(scripted_server, issuer)


ISSUER = "https://as.example"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"token_endpoint": None}, "no token_endpoint"),
        ({"authorization_endpoint": None}, "no authorization_endpoint"),
        ({"token_endpoint": "http://as.example/token"}, "token_endpoint must use https"),
        ({"jwks_uri": "https://u:p@as.example/jwks"}, "jwks_uri must not contain a user"),
        ({"userinfo_endpoint": 42}, "userinfo_endpoint is not a string"),
        ({"scopes_supported": "openid email"}, "scopes_supported is not a list of strings"),
    ],
)
def test_bad_documents_are_rejected(overrides, message):
    with pytest.raises(DiscoveryFailed, match=message):
        parse_metadata(document(ISSUER, **overrides), ISSUER)


def test_client_credentials_only_server_needs_no_authorization_endpoint():
    doc = document(
        ISSUER, authorization_endpoint=None, grant_types_supported=["client_credentials"]
    )
    assert parse_metadata(doc, ISSUER).authorization_endpoint == ""


def test_jwks_on_another_host_is_flagged():
    doc = document(ISSUER, jwks_uri="https://keys.example/jwks")
    assert parse_metadata(doc, ISSUER).jwks_on_other_host
    assert not parse_metadata(document(ISSUER), ISSUER).jwks_on_other_host


@pytest.mark.parametrize(
    ("issuer", "message"),
    [
        ("http://as.example", "must use https"),
        ("https://as.example/?tenant=a", "must not contain a query"),
        ("https://as.example/#x", "must not contain a fragment"),
    ],
)
def test_unacceptable_issuers_are_refused_before_any_request(issuer, message):
    with build_client() as client, pytest.raises(DiscoveryFailed, match=message):
        discover(client, issuer)


# --- the provider side: fields, refresh, command -------------------------------------------


def test_provider_fields_map_onto_the_model():
    fields = provider_fields_from_metadata(parse_metadata(document(ISSUER), ISSUER))
    provider = Provider(slug="p", name="P", **fields)
    assert provider.token_endpoint == f"{ISSUER}/token"
    assert provider.token_endpoint_auth_methods == ["client_secret_basic", "private_key_jwt"]
    assert provider.sends_issuer is True
    assert provider.metadata["issuer"] == ISSUER


@pytest.mark.django_db
def test_refresh_records_the_snapshot_and_failure_leaves_the_row_alone(scripted_server):
    issuer = scripted_server.url("").rstrip("/")
    provider = Provider.objects.create(slug="p", name="P", issuer=issuer, token_endpoint="x")
    scripted_server.add("/.well-known/openid-configuration", Reply(body=document(issuer)))

    refreshed = refresh_discovery(provider)

    assert refreshed.token_endpoint == f"{issuer}/token"
    assert refreshed.discovered_at is not None
    assert refreshed.metadata["jwks_uri"] == f"{issuer}/jwks"

    scripted_server.add(
        "/.well-known/openid-configuration",
        Reply(body=document("https://evil.example", token_endpoint="https://evil.example/t")),
    )
    with pytest.raises(DiscoveryFailed):
        refresh_discovery(provider)
    provider.refresh_from_db()
    assert provider.token_endpoint == f"{issuer}/token"
    assert provider.discovered_at == refreshed.discovered_at


@pytest.mark.django_db
def test_discover_command_refreshes_and_reports_failures(scripted_server):
    issuer = scripted_server.url("").rstrip("/")
    Provider.objects.create(slug="good", name="Good", issuer=issuer)
    Provider.objects.create(slug="manual", name="Manual")
    scripted_server.add("/.well-known/openid-configuration", Reply(body=document(issuer)))

    errors = io.StringIO()
    call_command("oauthconn_discover", "good", stdout=io.StringIO())
    assert Provider.objects.get(slug="good").jwks_uri == f"{issuer}/jwks"

    with pytest.raises(CommandError, match="Discovery failed for 1 provider"):
        call_command("oauthconn_discover", "manual", stderr=errors)
    assert "Manual has no issuer" in errors.getvalue()
    with pytest.raises(CommandError, match="No provider"):
        call_command("oauthconn_discover", "nope")


@pytest.mark.django_db
def test_metadata_moving_endpoints_of_a_provider_in_use_is_refused(scripted_server):
    issuer = scripted_server.url("").rstrip("/")
    provider = Provider.objects.create(
        slug="p", name="P", issuer=issuer, token_endpoint=f"{issuer}/token"
    )
    Connection.objects.create(
        slug="c", name="C", provider=provider, client_id="c", client_secret="s"
    )
    moved = document(issuer, token_endpoint="https://elsewhere.example/token")
    scripted_server.add("/.well-known/openid-configuration", Reply(body=moved), Reply(body=moved))

    with pytest.raises(
        DiscoveryFailed, match="moves endpoints .*token_endpoint: .* -> https://elsewhere"
    ):
        refresh_discovery(provider)
    provider.refresh_from_db()
    assert provider.token_endpoint == f"{issuer}/token" and provider.discovered_at is None

    accepted = refresh_discovery(provider, accept_moved_endpoints=True)
    assert accepted.token_endpoint == "https://elsewhere.example/token"


@pytest.mark.django_db
def test_admin_action_refreshes_and_reports(scripted_server, admin_client):
    issuer = scripted_server.url("").rstrip("/")
    good = Provider.objects.create(slug="good", name="Good", issuer=issuer)
    bad = Provider.objects.create(slug="manual", name="Manual")
    scripted_server.add("/.well-known/openid-configuration", Reply(body=document(issuer)))

    response = admin_client.post(
        reverse("admin:oauthconn_provider_changelist"),
        {"action": "refresh_metadata", "_selected_action": [good.pk, bad.pk]},
        follow=True,
    )

    shown = [str(m) for m in response.context["messages"]]
    assert "Good: metadata refreshed." in shown
    assert "Manual: Manual has no issuer to discover from." in shown
    good.refresh_from_db()
    assert good.jwks_uri == f"{issuer}/jwks" and good.discovered_at is not None

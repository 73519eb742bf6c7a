"""OpenID Connect against django-oauth-toolkit with OIDC on (RS256), over real HTTP.

Discovery of the test server, a full authorization whose ID token (with our nonce) is
verified against DOT's JWKS, and userinfo filling the display claims the ID token lacks.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from oauth2_provider.models import Application
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.views.oidc import UserInfoView

from oauthconn.flows.discovery import discover_provider
from oauthconn.models import Event, EventKind, Provider, Token
from tests.conftest import consent, deliver, outcome, start


class UserinfoValidator(OAuth2Validator):
    """DOT puts only ``sub`` in ID tokens; this server adds name and email in userinfo only."""

    def get_userinfo_claims(self, request):
        claims = super().get_userinfo_claims(request)
        return {**claims, "name": "Staff Member", "email": request.user.email}


@pytest.fixture
def issuer(live_server) -> str:
    return f"{live_server.url}/demo-oauth"


@pytest.fixture
def oidc_provider(issuer, transactional_db) -> Provider:
    return Provider.objects.create(slug="dot-oidc", name="DOT OIDC", **discover_provider(issuer))


@pytest.fixture
def oidc_connection(make_connection, oidc_provider):
    connection = make_connection("idp", provider_=oidc_provider, scopes="openid read")
    Application.objects.filter(client_id=connection.client_id).update(
        algorithm=Application.RS256_ALGORITHM
    )
    return connection


def test_discovery_of_the_test_server(oidc_provider, issuer):
    assert oidc_provider.issuer == issuer
    assert oidc_provider.token_endpoint == f"{issuer}/token/"
    assert oidc_provider.jwks_uri == f"{issuer}/.well-known/jwks.json"
    assert oidc_provider.userinfo_endpoint == f"{issuer}/userinfo/"
    assert "RS256" in oidc_provider.id_token_signing_algs
    # DOT also lists HS256: metadata alone never allows an HMAC algorithm (R32).
    assert "HS256" in oidc_provider.metadata["id_token_signing_alg_values_supported"]
    assert "HS256" not in oidc_provider.id_token_signing_algs
    assert oidc_provider.discovered_at is not None


def test_authorization_with_id_token_and_nonce(staff_client, staff, oidc_connection, as_log):
    authorize_url = start(staff_client, oidc_connection)
    nonce = parse_qs(urlsplit(authorize_url).query)["nonce"][0]

    response = deliver(staff_client, oidc_connection, consent(staff_client, authorize_url))

    assert response.status_code == 303
    token = Token.objects.get(connection=oidc_connection)
    assert token.subject == str(staff.pk)
    claims = jwt.decode(token.id_token.reveal(), options={"verify_signature": False})
    assert claims["nonce"] == nonce
    assert len(as_log.to("/.well-known/jwks.json")) == 1


@pytest.fixture
def userinfo_with_claims(settings):
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "OAUTH2_VALIDATOR_CLASS": "tests.test_oidc_live.UserinfoValidator",
        # DOT caches its server per view class; rebuild it so the validator above is used.
        "ALWAYS_RELOAD_OAUTHLIB_CORE": True,
    }
    yield
    # ...and drop the cached one holding our validator, for the tests that follow.
    if "_oauthlib_core" in vars(UserInfoView):
        del UserInfoView._oauthlib_core


@pytest.mark.usefixtures("userinfo_with_claims")
def test_userinfo_fills_claims_the_id_token_lacks(staff_client, staff, oidc_connection, as_log):
    response = deliver(
        staff_client, oidc_connection, consent(staff_client, start(staff_client, oidc_connection))
    )

    assert response.status_code == 303
    token = Token.objects.get(connection=oidc_connection)
    assert token.claims == {"name": "Staff Member", "email": "staff@example.com"}
    assert token.subject == str(staff.pk)
    assert len(as_log.to("/userinfo/")) == 1


def test_a_wrong_issuer_at_the_provider_fails_and_stores_nothing(
    staff_client, oidc_connection, oidc_provider
):
    # The admin-entered issuer differs from what the server puts in its ID tokens.
    Provider.objects.filter(pk=oidc_provider.pk).update(issuer=oidc_provider.issuer + "/")

    response = outcome(
        staff_client,
        deliver(
            staff_client,
            oidc_connection,
            consent(staff_client, start(staff_client, oidc_connection)),
        ),
    )

    assert response.status_code == 400
    assert b"issued by another issuer" in response.content
    assert not Token.objects.filter(connection=oidc_connection).exists()
    event = Event.objects.get(connection=oidc_connection)
    assert event.kind == EventKind.AUTHORIZATION_FAILED
    assert event.data["code"] == "id_token_issuer"


def test_reauthorization_by_another_account_waits_for_a_choice(staff_client, oidc_connection):
    """Defect 7b: stored only once confirmed (the answers: tests/test_account_switch.py)."""
    authorize_once = lambda: deliver(  # noqa: E731
        staff_client, oidc_connection, consent(staff_client, start(staff_client, oidc_connection))
    )
    authorize_once()
    # As if the earlier grant had been made by another account at the provider:
    Token.objects.filter(connection=oidc_connection).update(subject="someone-else")

    assert authorize_once()["Location"].startswith("/oauthconn/switch/")
    assert Token.objects.get(connection=oidc_connection).subject == "someone-else"
    assert Event.objects.filter(kind=EventKind.AUTHORIZED).count() == 1


def test_a_failing_reauthorization_keeps_the_earlier_grant(
    staff_client, oidc_connection, oidc_provider
):
    deliver(
        staff_client, oidc_connection, consent(staff_client, start(staff_client, oidc_connection))
    )
    before = Token.objects.get(connection=oidc_connection)
    Provider.objects.filter(pk=oidc_provider.pk).update(issuer="https://other.example")

    response = outcome(
        staff_client,
        deliver(
            staff_client,
            oidc_connection,
            consent(staff_client, start(staff_client, oidc_connection)),
        ),
    )

    assert response.status_code == 400
    after = Token.objects.get(connection=oidc_connection)
    assert after.access_token.reveal() == before.access_token.reveal()
    assert after.refresh_token.reveal() == before.refresh_token.reveal()
    assert after.subject == before.subject
    failed = Event.objects.get(kind=EventKind.AUTHORIZATION_FAILED)
    assert failed.data["code"] == "id_token_issuer"

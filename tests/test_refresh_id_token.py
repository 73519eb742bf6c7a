"""R39 / catalogue F10: an ID token in a refresh response is checked like the first one
(without a nonce) and must name the same account; otherwise the refresh is refused whole."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from oauthconn import get_connection
from oauthconn.exceptions import IdentityChanged, ReauthorizationRequired, TemporarilyUnavailable
from oauthconn.models import Connection, Event, EventKind, Provider, Token, TokenStatus
from tests.scripted_server import Reply
from tests.test_idtoken import CLIENT, ISSUER, K1, public_jwk, sign

pytestmark = pytest.mark.django_db

OLD_ACCESS, OLD_REFRESH, OLD_ID = "old-access", "old-refresh", "old-id-token"


@pytest.fixture
def oidc_grant(scripted_server):
    """An expired grant authorized as user-42, at a provider served by scripted_server."""
    scripted_server.default("/jwks", Reply(body={"keys": [public_jwk(K1, "k1")]}))
    provider = Provider.objects.create(
        slug="oidc",
        name="OIDC",
        issuer=ISSUER,
        token_endpoint=scripted_server.url("/token"),
        jwks_uri=scripted_server.url("/jwks"),
    )
    connection = Connection.objects.create(
        slug="crm",
        name="CRM",
        provider=provider,
        client_id=CLIENT,
        client_secret="s",
        scopes="openid",
    )
    return Token.objects.create(
        connection=connection,
        access_token=OLD_ACCESS,
        refresh_token=OLD_REFRESH,
        id_token=OLD_ID,
        subject="user-42",
        expires_at=timezone.now() - timedelta(seconds=1),
    )


def refresh_answers(scripted_server, id_token: str) -> None:
    body = {
        "access_token": "new-access",
        "token_type": "Bearer",
        "expires_in": 3600,
        "id_token": id_token,
    }
    scripted_server.add("/token", Reply(body=body))


def test_a_refreshed_id_token_for_the_same_account_is_kept(oidc_grant, scripted_server):
    refreshed = sign(nonce=None)  # OIDC Core §12.2: no nonce in a refreshed ID token
    refresh_answers(scripted_server, refreshed)

    assert get_connection("crm").access_token == "new-access"

    oidc_grant.refresh_from_db()
    assert oidc_grant.id_token.reveal() == refreshed
    assert oidc_grant.status == TokenStatus.ACTIVE


@pytest.mark.parametrize(
    ("claims", "says"),
    [({"sub": "someone-else"}, "another account"), ({"aud": "another-client"}, "another client")],
    ids=["other-account", "other-audience"],
)
def test_an_identity_change_needs_reauthorization(oidc_grant, scripted_server, claims, says):
    """Defect 7a: no retry brings the original account back, so it is terminal, not failing."""
    refresh_answers(scripted_server, sign(nonce=None, **claims))

    with pytest.raises(ReauthorizationRequired, match=says) as caught:
        get_connection("crm").access_token
    assert isinstance(caught.value.__cause__, IdentityChanged)

    oidc_grant.refresh_from_db()
    assert_kept_whole(oidc_grant)
    assert oidc_grant.status == TokenStatus.NEEDS_REAUTH
    assert says in oidc_grant.last_error and "reauthorize" in oidc_grant.last_error
    event = Event.objects.get(kind=EventKind.NEEDS_REAUTH)
    assert event.message == oidc_grant.last_error
    with pytest.raises(ReauthorizationRequired):  # and no more requests: it stays terminal
        get_connection("crm").access_token
    assert len(scripted_server.requests_to("/token")) == 1


def test_a_refreshed_id_token_from_another_issuer_is_refused_whole(oidc_grant, scripted_server):
    refresh_answers(scripted_server, sign(nonce=None, iss="https://evil.example"))

    with pytest.raises(TemporarilyUnavailable):
        get_connection("crm").access_token

    oidc_grant.refresh_from_db()
    assert_kept_whole(oidc_grant)
    assert oidc_grant.status == TokenStatus.FAILING
    assert "ID token" in oidc_grant.last_error


def assert_kept_whole(token: Token) -> None:
    assert token.access_token.reveal() == OLD_ACCESS
    assert token.refresh_token.reveal() == OLD_REFRESH
    assert token.id_token.reveal() == OLD_ID


def test_refresh_now_in_the_admin_says_the_account_changed(
    oidc_grant, scripted_server, staff_client
):
    # Still valid: before, the old token was served and the page claimed a new one.
    Token.objects.filter(pk=oidc_grant.pk).update(expires_at=timezone.now() + timedelta(hours=1))
    refresh_answers(scripted_server, sign(nonce=None, sub="someone-else"))
    url = reverse("admin:oauthconn_connection_refresh", args=[oidc_grant.connection.pk])

    page = staff_client.post(url, follow=True).content.decode()

    assert "the refresh failed: The provider&#x27;s refreshed ID token names another" in page
    assert "a new access token" not in page
    assert Token.objects.get(pk=oidc_grant.pk).status == TokenStatus.NEEDS_REAUTH


def test_a_grant_without_a_checked_id_token_ignores_one_in_a_refresh(oidc_grant, scripted_server):
    Token.objects.filter(pk=oidc_grant.pk).update(subject="", id_token=None)
    refresh_answers(scripted_server, "not-even-a-jwt")

    assert get_connection("crm").access_token == "new-access"
    assert Token.objects.get(pk=oidc_grant.pk).id_token is None

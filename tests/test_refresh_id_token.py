"""R39 / catalogue F10: an ID token in a refresh response is checked like the first one
(without a nonce) and must name the same account; otherwise the refresh is refused whole."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from oauthconn import get_connection
from oauthconn.exceptions import TemporarilyUnavailable
from oauthconn.models import Connection, Provider, Token, TokenStatus
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
    "claims",
    [{"sub": "someone-else"}, {"iss": "https://evil.example"}, {"aud": "another-client"}],
    ids=["other-account", "other-issuer", "other-audience"],
)
def test_a_refreshed_id_token_that_does_not_match_is_refused_whole(
    oidc_grant, scripted_server, claims
):
    refresh_answers(scripted_server, sign(nonce=None, **claims))

    with pytest.raises(TemporarilyUnavailable):
        get_connection("crm").access_token

    oidc_grant.refresh_from_db()
    assert oidc_grant.access_token.reveal() == OLD_ACCESS
    assert oidc_grant.refresh_token.reveal() == OLD_REFRESH
    assert oidc_grant.id_token.reveal() == OLD_ID
    assert oidc_grant.status == TokenStatus.FAILING
    assert "ID token" in oidc_grant.last_error


def test_a_grant_without_a_checked_id_token_ignores_one_in_a_refresh(oidc_grant, scripted_server):
    Token.objects.filter(pk=oidc_grant.pk).update(subject="", id_token=None)
    refresh_answers(scripted_server, "not-even-a-jwt")

    assert get_connection("crm").access_token == "new-access"
    assert Token.objects.get(pk=oidc_grant.pk).id_token is None

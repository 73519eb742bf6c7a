"""Defect 7a: no button reports a renewal when the flow served the old token.

A forced renewal while the provider fails (here a 503) keeps serving the still-valid old
token; the admin's "Refresh now", the API's refresh action and the user's page must say
"nothing was renewed" and why, never "a new access token". The shared grant is a real one
from the test kit's fake provider (oauthconn.testing), scripted to answer the renewal with 503.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from oauthconn.models import Connection, GrantType, Provider, Token, TokenStatus
from oauthconn.testing import Reply as FakeReply
from tests.scripted_server import Reply

pytestmark = pytest.mark.django_db

OLD_ACCESS = "still-valid-access"


@pytest.fixture
def failing_provider(scripted_server) -> Provider:
    scripted_server.default("/token", Reply(status=503, body={"error": "temporarily_unavailable"}))
    return Provider.objects.create(
        slug="down", name="Down", token_endpoint=scripted_server.url("/token")
    )


def valid_grant(connection: Connection, owner=None) -> Token:
    return Token.objects.create(
        connection=connection,
        owner=owner,
        access_token=OLD_ACCESS,
        refresh_token="refresh",
        expires_at=timezone.now() + timedelta(minutes=30),
    )


@pytest.fixture
def shared(oauthconn_provider) -> Token:
    """A real grant from the test kit's fake provider, whose next token request gets a 503."""
    connection = oauthconn_provider.connect("crm", name="CRM")
    unavailable = FakeReply(status=503, json={"error": "temporarily_unavailable"})
    oauthconn_provider.next_response("token", unavailable)
    return Token.objects.get(connection=connection)


def assert_old_token_kept(token: Token, old: str = OLD_ACCESS) -> None:
    token.refresh_from_db()
    assert token.access_token.reveal() == old
    assert token.status == TokenStatus.FAILING


def test_refresh_now_in_the_admin_says_nothing_was_renewed(
    shared, staff_client, oauthconn_provider
):
    url = reverse("admin:oauthconn_connection_refresh", args=[shared.connection.pk])
    old = shared.access_token.reveal()

    page = staff_client.post(url, follow=True).content.decode()

    assert "CRM: nothing was renewed: The token endpoint is temporarily unavailable" in page
    assert "a new access token" not in page
    assert len(oauthconn_provider.requests_to("token", grant_type="refresh_token")) == 1
    assert_old_token_kept(shared, old)


def test_the_api_refresh_action_says_nothing_was_renewed(shared, staff_client):
    url = f"/api/oauthconn/connections/{shared.connection.pk}/refresh/"
    old = shared.access_token.reveal()

    response = staff_client.post(url)

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "provider_unavailable"
    assert body["detail"].startswith("Nothing was renewed: The token endpoint is temporarily")
    assert int(response["Retry-After"]) > 0
    assert_old_token_kept(shared, old)


def test_the_users_page_says_nothing_was_renewed(failing_provider, client, django_user_model):
    user = django_user_model.objects.create_user("ann", password="pw")
    connection = Connection.objects.create(
        slug="mine",
        name="Mine",
        provider=failing_provider,
        grant_type=GrantType.CLIENT_CREDENTIALS,
        client_id="c",
        client_secret="s",
        per_user=True,
    )
    token = valid_grant(connection, owner=user)
    client.force_login(user)

    response = client.post(reverse("oauthconn:start", args=["mine"]), follow=True)

    page = response.content.decode()
    assert "Mine: nothing was renewed: The token endpoint is temporarily unavailable" in page
    assert "a new access token" not in page
    assert_old_token_kept(token)

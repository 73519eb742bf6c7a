"""Site code against a connected connection: valid tokens, refresh with rotation, API calls,
revocation. All against django-oauth-toolkit over real HTTP."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

from oauthconn import get_connection
from oauthconn.exceptions import (
    ConfigurationError,
    ConnectionNotFound,
    DisallowedResourceURL,
    NotConnected,
    ReauthorizationRequired,
)
from oauthconn.models import Token, TokenStatus
from tests.conftest import authorize

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def connected(staff_client, make_connection, as_log):
    connection = make_connection()
    authorize(staff_client, connection)
    as_log.clear()
    return connection


def expire(connection) -> None:
    Token.objects.filter(connection=connection).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def test_valid_token_costs_one_query_and_no_network(connected, as_log, django_assert_num_queries):
    with django_assert_num_queries(1):
        crm = get_connection("crm")
        token = crm.access_token
    with django_assert_num_queries(0):
        assert crm.access_token == token  # reused within the object
    assert as_log.requests == []
    assert token == Token.objects.get(connection=connected).access_token.reveal()


def test_an_unusable_grant_loaded_with_the_connection_still_says_why(connected):
    Token.objects.filter(connection=connected).update(status=TokenStatus.NEEDS_REAUTH)
    with pytest.raises(ReauthorizationRequired):
        get_connection("crm").access_token


def test_expired_token_is_refreshed_and_the_rotated_refresh_token_replaces_the_old(
    connected, as_log
):
    old = Token.objects.get(connection=connected)
    old_access, old_refresh = old.access_token.reveal(), old.refresh_token.reveal()
    expire(connected)

    new_access = get_connection("crm").access_token

    assert new_access != old_access
    (refresh,) = as_log.to("/demo-oauth/token/")
    assert refresh.form["grant_type"] == ["refresh_token"]
    assert refresh.form["refresh_token"] == [old_refresh]
    assert "redirect_uri" not in refresh.form and "code_verifier" not in refresh.form
    assert refresh.headers["Authorization"].startswith("Basic ")
    token = Token.objects.get(connection=connected)
    assert token.refresh_token.reveal() != old_refresh
    assert (
        token.refresh_token.reveal()
        == RefreshToken.objects.get(access_token__token=new_access).token
    )
    assert token.status == TokenStatus.ACTIVE and token.refreshed_at is not None


def test_refresh_within_the_leeway(connected, as_log, settings):
    Token.objects.filter(connection=connected).update(
        expires_at=timezone.now() + timedelta(seconds=30)
    )
    get_connection("crm").access_token
    assert len(as_log.to("/demo-oauth/token/")) == 1  # 30 s left < default leeway of 60 s
    as_log.clear()
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REFRESH_LEEWAY": 10}
    Token.objects.filter(connection=connected).update(
        expires_at=timezone.now() + timedelta(seconds=30)
    )
    get_connection("crm").access_token
    assert as_log.to("/demo-oauth/token/") == []


def test_refresh_without_a_new_refresh_token_keeps_the_old_one(connected, as_log, settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "ROTATE_REFRESH_TOKEN": False}
    refresh_token = Token.objects.get(connection=connected).refresh_token.reveal()
    expire(connected)
    first = get_connection("crm").access_token
    assert Token.objects.get(connection=connected).refresh_token.reveal() == refresh_token
    expire(connected)
    second = get_connection("crm").access_token  # the kept refresh token still works
    assert first != second
    assert [r.form["refresh_token"] for r in as_log.to("/demo-oauth/token/")] == [
        [refresh_token]
    ] * 2


def test_revoked_grant_needs_reauthorization_and_stops_asking(connected, as_log):
    RefreshToken.objects.all().delete()  # the provider forgot the grant
    expire(connected)
    with pytest.raises(ReauthorizationRequired):
        get_connection("crm").access_token
    for _ in range(5):
        with pytest.raises(ReauthorizationRequired):
            get_connection("crm").access_token
    assert len(as_log.to("/demo-oauth/token/")) == 1
    assert Token.objects.get(connection=connected).status == TokenStatus.NEEDS_REAUTH


def test_reauthorizing_recovers(staff_client, connected):
    Token.objects.filter(connection=connected).update(status=TokenStatus.NEEDS_REAUTH)
    authorize(staff_client, connected)
    assert Token.objects.get(connection=connected).status == TokenStatus.ACTIVE
    assert connected.events.filter(kind="recovered").exists()


def test_api_calls_carry_the_token_to_the_api_base_url_only(connected, live_server, as_log):
    crm = get_connection("crm")
    response = crm.get("me/")
    assert response.status_code == 200
    assert response.json() == {"username": "staff"}
    (api_call,) = as_log.to("/demo-api/me/")
    assert api_call.headers["Authorization"] == f"Bearer {crm.access_token}"
    with pytest.raises(DisallowedResourceURL):
        crm.get("http://127.0.0.2:9/steal")
    other_port = live_server.url.rsplit(":", 1)[0] + ":1"
    with pytest.raises(DisallowedResourceURL):
        crm.get(f"{other_port}/demo-api/me/")


def test_a_401_refreshes_once_and_retries(connected, as_log):
    crm = get_connection("crm")
    stale = crm.access_token
    AccessToken.objects.filter(token=stale).update(expires=timezone.now() - timedelta(seconds=5))

    response = crm.get("me/")

    assert response.status_code == 200
    assert crm.access_token != stale
    assert len(as_log.to("/demo-oauth/token/")) == 1
    assert len(as_log.to("/demo-api/me/")) == 2


def test_client_and_async_client(connected):
    crm = get_connection("crm")
    with crm.client() as http:
        assert http.get("me/").json()["username"] == "staff"

    async def call():
        async with crm.async_client() as http:
            return (await http.get("me/")).json()

    assert asyncio.run(call())["username"] == "staff"


def test_typed_errors_say_why(make_connection, django_user_model):
    with pytest.raises(ConnectionNotFound):
        get_connection("nope")
    make_connection("fresh")
    with pytest.raises(NotConnected):
        get_connection("fresh").access_token
    make_connection("mine", per_user=True)
    with pytest.raises(ConfigurationError):
        get_connection("mine")
    with pytest.raises(ConfigurationError):
        get_connection("fresh", owner=django_user_model.objects.create_user("u"))


def test_disconnect_revokes_at_the_provider_then_wipes(staff_client, connected, as_log):
    token = Token.objects.get(connection=connected)
    refresh_token = token.refresh_token.reveal()

    response = staff_client.post(f"/oauthconn/disconnect/{connected.slug}/")

    assert response.status_code == 303
    revocations = as_log.to("/demo-oauth/revoke_token/")
    assert [r.form["token_type_hint"] for r in revocations] == [["refresh_token"], ["access_token"]]
    assert revocations[0].form["token"] == [refresh_token]
    assert all(r.headers["Authorization"].startswith("Basic ") for r in revocations)
    assert not RefreshToken.objects.filter(token=refresh_token, revoked__isnull=True).exists()
    token.refresh_from_db()
    assert token.access_token is None and token.refresh_token is None
    assert token.status == TokenStatus.REVOKED
    with pytest.raises(NotConnected):
        get_connection("crm").access_token


def test_disconnect_wipes_even_when_revocation_fails(staff_client, connected, unused_port):
    connected.provider.revocation_endpoint = f"http://127.0.0.1:{unused_port}/revoke"
    connected.provider.save()
    staff_client.post(f"/oauthconn/disconnect/{connected.slug}/")
    token = Token.objects.get(connection=connected)
    assert token.access_token is None and token.revocation_pending

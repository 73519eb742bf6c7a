"""oauthconn.testing: each capability of the fake provider, used through oauthconn's public
API, as a site's tests would use it (the ``oauthconn_provider`` fixture of the plugin)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.db import connections
from django.urls import reverse

from oauthconn import get_connection
from oauthconn.crypto import Sealed
from oauthconn.exceptions import (
    AuthorizationDenied,
    ConfigurationError,
    JWKSUnavailable,
    ProviderTimeout,
    ReauthorizationRequired,
    TemporarilyUnavailable,
)
from oauthconn.models import ClientAuthMethod, Connection, GrantType, Token, TokenStatus
from oauthconn.testing import FakeProvider, Reply


def stored(slug: str, owner=None) -> Token:
    return Token.objects.get(connection__slug=slug, owner=owner)


def test_connect_runs_the_code_flow_with_pkce_and_an_id_token(oauthconn_provider):
    oauthconn_provider.connect("crm", subject="acme", claims={"name": "Acme", "email": "a@x.io"})

    assert get_connection("crm").get("me").json()["sub"] == "acme"
    token = stored("crm")
    assert (token.status, token.subject, token.claims) == (
        TokenStatus.ACTIVE,
        "acme",
        {"name": "Acme", "email": "a@x.io"},
    )
    (redeem,) = oauthconn_provider.requests_to("token")
    assert redeem.grant_type == "authorization_code" and redeem.form["code_verifier"]
    assert [r.endpoint for r in oauthconn_provider.requests][:2] == ["authorize", "token"]


def test_per_user_connections_keep_one_grant_per_owner(oauthconn_provider, django_user_model):
    alice = django_user_model.objects.create_user("alice")
    bob = django_user_model.objects.create_user("bob")
    oauthconn_provider.connect("drive", owner=alice)
    oauthconn_provider.connect("drive", owner=bob, subject="bob-at-drive")

    assert get_connection("drive", owner=alice).get("me").json()["sub"] == f"user-{alice.pk}"
    assert get_connection("drive", owner=bob).get("me").json()["sub"] == "bob-at-drive"
    assert Token.objects.filter(connection__slug="drive").count() == 2


def test_expire_makes_the_next_call_refresh_once_with_rotation(oauthconn_provider):
    oauthconn_provider.connect("crm")
    first_refresh = Sealed.reveal_optional(stored("crm").refresh_token)
    oauthconn_provider.expire("crm")
    oauthconn_provider.reset()

    assert get_connection("crm").get("me").status_code == 200
    assert get_connection("crm").get("me").status_code == 200
    assert [r.grant_type for r in oauthconn_provider.requests_to("token")] == ["refresh_token"]
    assert Sealed.reveal_optional(stored("crm").refresh_token) not in (None, first_refresh)


def test_the_old_access_token_really_expired_at_the_provider(oauthconn_provider):
    oauthconn_provider.connect("crm")
    old = Sealed.reveal_optional(stored("crm").access_token)
    oauthconn_provider.expire("crm")

    answer = httpx.get(f"{oauthconn_provider.url}/me", headers={"Authorization": f"Bearer {old}"})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_a_reused_refresh_token_revokes_the_grant(oauthconn_provider):
    connection = oauthconn_provider.connect("crm")
    rotated_out = Sealed.reveal_optional(stored("crm").refresh_token)
    oauthconn_provider.expire("crm")
    get_connection("crm").access_token  # refreshed: the refresh token rotates

    replay = httpx.post(
        f"{oauthconn_provider.url}/token",
        data={"grant_type": "refresh_token", "refresh_token": rotated_out},
        auth=(connection.client_id, Sealed.reveal_optional(connection.client_secret)),
    )
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    oauthconn_provider.expire("crm")
    with pytest.raises(ReauthorizationRequired):
        get_connection("crm").access_token


def test_revoke_at_the_provider_asks_for_reauthorization(oauthconn_provider):
    oauthconn_provider.connect("crm")
    oauthconn_provider.revoke("crm")

    with pytest.raises(ReauthorizationRequired):
        get_connection("crm").get("me")
    assert stored("crm").status == TokenStatus.NEEDS_REAUTH
    refresh = oauthconn_provider.requests_to("token", grant_type="refresh_token")
    assert [r.grant_type for r in refresh] == ["refresh_token"]  # tried once, not retried


def test_scripted_invalid_grant(oauthconn_provider):
    oauthconn_provider.connect("crm")
    oauthconn_provider.expire("crm")
    oauthconn_provider.next_response("token", Reply.error("invalid_grant"))

    with pytest.raises(ReauthorizationRequired):
        get_connection("crm").access_token
    assert stored("crm").last_error_code == "invalid_grant"


def test_scripted_429_keeps_the_grant_and_passes_retry_after_on(oauthconn_provider):
    oauthconn_provider.connect("crm")
    oauthconn_provider.expire("crm")
    oauthconn_provider.next_response("token", Reply.rate_limited(retry_after=120))

    with pytest.raises(TemporarilyUnavailable) as caught:
        get_connection("crm").access_token
    assert caught.value.retry_after == 120
    token = stored("crm")
    assert token.status == TokenStatus.FAILING and token.refresh_token is not None


def test_scripted_5xx_is_temporary(oauthconn_provider):
    oauthconn_provider.connect("crm")
    oauthconn_provider.expire("crm")
    oauthconn_provider.next_response("token", Reply.server_error(502))

    with pytest.raises(TemporarilyUnavailable):
        get_connection("crm").access_token
    assert stored("crm").status == TokenStatus.FAILING


def test_replies_can_be_scripted_with_keywords_and_in_sequence(oauthconn_provider):
    oauthconn_provider.connect("crm")
    oauthconn_provider.next_response(
        "me", Reply.server_error(), status=418, json={"teapot": True}, headers={"X-A": "b"}
    )

    first, second, third = (get_connection("crm").get("me") for _ in range(3))
    assert first.status_code == 503 and "text/html" in first.headers["Content-Type"]
    assert (second.status_code, second.json(), second.headers["X-A"]) == (
        418,
        {"teapot": True},
        "b",
    )
    assert third.status_code == 200


def test_a_slow_token_endpoint_meets_oauthconns_timeout(oauthconn_provider, settings):
    oauthconn_provider.connect("crm")
    oauthconn_provider.expire("crm")
    settings.OAUTHCONN = {**settings.OAUTHCONN, "READ_TIMEOUT": 0.2}
    oauthconn_provider.next_response("token", Reply.slow(2))

    with pytest.raises(TemporarilyUnavailable) as caught:
        get_connection("crm").access_token
    assert isinstance(caught.value.__cause__, ProviderTimeout)


def test_a_slow_reply_still_answers_as_usual(oauthconn_provider):
    oauthconn_provider.connect("crm")
    oauthconn_provider.next_response("me", Reply.slow(0.05))

    assert get_connection("crm").get("me").json()["sub"] == "fake-user"


def test_scripted_api_answers_reach_the_site_code(oauthconn_provider):
    oauthconn_provider.connect("crm")
    oauthconn_provider.next_response("me", Reply.rate_limited(retry_after=7))

    response = get_connection("crm").get("me")
    assert (response.status_code, response.headers["Retry-After"]) == (429, "7")
    assert get_connection("crm").get("me").status_code == 200
    assert oauthconn_provider.requests_to("token", grant_type="refresh_token") == []


def test_added_resources_check_the_bearer_token(oauthconn_provider):
    oauthconn_provider.connect("crm")
    oauthconn_provider.add_resource("/v1/contacts", [{"name": "Ada"}])

    assert get_connection("crm").get("v1/contacts").json() == [{"name": "Ada"}]
    assert httpx.get(f"{oauthconn_provider.url}/v1/contacts").status_code == 401


def test_client_credentials_connections_fetch_on_first_use(oauthconn_provider):
    oauthconn_provider.connect(
        "svc",
        grant_type=GrantType.CLIENT_CREDENTIALS,
        client_auth_method=ClientAuthMethod.CLIENT_SECRET_POST,
        scopes="read",
    )
    assert oauthconn_provider.requests == []

    me = get_connection("svc").get("me").json()
    assert (me["sub"], me["scope"]) == (None, "read")
    (fetch,) = oauthconn_provider.requests_to("token")
    assert fetch.grant_type == "client_credentials" and "authorization" not in fetch.headers


def test_a_denied_authorization_stores_nothing(oauthconn_provider):
    oauthconn_provider.deny_next_authorization()

    with pytest.raises(AuthorizationDenied):
        oauthconn_provider.connect("crm")
    assert not Token.objects.exists() and not Connection.objects.exists()


def test_a_slug_of_another_provider_is_refused_readably(oauthconn_provider):
    with FakeProvider() as other:
        other.connect("crm")
        with pytest.raises(ConfigurationError, match="'crm' already exists for another"):
            oauthconn_provider.connect("crm")
        assert get_connection("crm").get("me").status_code == 200  # still the other's


def test_the_request_log_never_shows_a_secret(oauthconn_provider):
    connection = oauthconn_provider.connect("crm", client_auth_method="client_secret_post")
    oauthconn_provider.expire("crm")
    get_connection("crm").access_token

    shown = repr(oauthconn_provider.requests)
    sent = [r.form for r in oauthconn_provider.requests_to("token")]
    secrets = {form[name] for form in sent for name in form if name != "grant_type"}
    secrets -= {connection.client_id, connection.redirect_uri}
    # the client secret, the code, its verifier, the refresh token
    assert len(secrets) == 4 and not any(secret in shown for secret in secrets)


def test_reset_forgets_requests_and_unused_scripts(oauthconn_provider):
    oauthconn_provider.connect("crm")
    oauthconn_provider.next_response("me", Reply.server_error())
    oauthconn_provider.reset()

    assert oauthconn_provider.requests == []
    assert get_connection("crm").get("me").status_code == 200


def test_the_provider_turns_loopback_on_only_while_open(db, settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "ALLOW_INSECURE_LOOPBACK": False}

    with FakeProvider() as provider:
        assert django_settings.OAUTHCONN["ALLOW_INSECURE_LOOPBACK"] is True
        provider.connect("crm")
        assert get_connection("crm").get("me").status_code == 200
    assert django_settings.OAUTHCONN["ALLOW_INSECURE_LOOPBACK"] is False
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{provider.url}/me")  # closed


def test_its_discovery_document_is_what_oauthconn_reads(oauthconn_provider):
    from oauthconn import http
    from oauthconn.oauth.discovery import discover

    with http.build_client() as client:
        metadata = discover(client, oauthconn_provider.url)
    assert metadata.issuer == oauthconn_provider.url
    assert metadata.jwks_uri == f"{oauthconn_provider.url}{oauthconn_provider.jwks_path}"


def test_the_sites_own_connect_pages_work_with_consent(
    oauthconn_provider, client, django_user_model
):
    user = django_user_model.objects.create_user("ann")
    oauthconn_provider.connect("drive", per_user=True, authorize=False)
    client.force_login(user)

    started = client.post(reverse("oauthconn:start", args=["drive"]))
    back = oauthconn_provider.consent(started["Location"], subject="ann-at-drive")
    finished = client.get(back)

    assert finished.status_code == 303
    assert get_connection("drive", owner=user).get("me").json()["sub"] == "ann-at-drive"
    assert stored("drive", owner=user).authorized_by == user


def test_a_denied_consent_comes_back_as_an_error(oauthconn_provider, client, django_user_model):
    client.force_login(django_user_model.objects.create_user("ann"))
    oauthconn_provider.connect("drive", per_user=True, authorize=False)
    oauthconn_provider.deny_next_authorization()

    back = oauthconn_provider.consent(
        client.post(reverse("oauthconn:start", args=["drive"]))["Location"]
    )

    assert "error=access_denied" in back
    client.get(back)
    assert not Token.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_async_client_works_against_it(oauthconn_provider):
    oauthconn_provider.connect("crm")
    oauthconn_provider.expire("crm")

    crm = get_connection("crm")  # the lookup is sync; the refresh runs in sync_to_async

    async def call() -> dict:
        async with crm.async_client() as http:
            answer = (await http.get("me")).json()
        # The refresh ran in asgiref's sync thread: close its database connection there, or
        # PostgreSQL cannot drop the test database at the end of the run.
        await sync_to_async(connections.close_all)()
        return answer

    assert asyncio.run(call())["sub"] == "fake-user"
    assert len(oauthconn_provider.requests_to("token", grant_type="refresh_token")) == 1


def test_an_unreachable_jwks_fails_the_authorization_and_stores_nothing(oauthconn_provider):
    oauthconn_provider.next_response("jwks", Reply.server_error())

    with pytest.raises(JWKSUnavailable):
        oauthconn_provider.connect("crm")
    assert len(oauthconn_provider.requests_to("jwks")) == 1
    assert not Token.objects.exists()


def test_disconnecting_revokes_the_grant_at_the_provider(oauthconn_provider):
    from oauthconn.flows import disconnect

    oauthconn_provider.connect("crm")
    token = stored("crm")
    refresh = Sealed.reveal_optional(token.refresh_token)

    disconnect(token)

    revocations = oauthconn_provider.requests_to("revoke")
    assert refresh in [r.form["token"] for r in revocations]
    with oauthconn_provider.auth.lock:
        assert oauthconn_provider.auth.refresh_tokens[refresh].revoked


def test_without_rotation_a_refresh_keeps_the_refresh_token(db):
    with FakeProvider(rotate_refresh_tokens=False, access_token_lifetime=600) as provider:
        provider.connect("crm")
        before = Sealed.reveal_optional(stored("crm").refresh_token)
        provider.expire("crm")

        get_connection("crm").access_token

        (refresh,) = provider.requests_to("token", grant_type="refresh_token")
        assert refresh.form["refresh_token"] == before
        assert Sealed.reveal_optional(stored("crm").refresh_token) == before
        assert stored("crm").lifetime == 600


def test_the_example_page_says_when_no_crm_is_connected(client, db):
    """The demo site has no "crm" connection until someone makes one: a readable 503, not a
    500 (as a newcomer opening /crm-account/ on the demo would otherwise get)."""
    response = client.get("/crm-account/")
    assert response.status_code == 503
    assert response.content == b"No CRM account is connected yet."

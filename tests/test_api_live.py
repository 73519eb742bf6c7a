"""The REST API's flows against django-oauth-toolkit over real HTTP, and against misbehaving
providers (scripted_server); per-user grants and cross-user access attempts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken
from rest_framework.authtoken.models import Token as AuthToken
from rest_framework.test import APIClient

from oauthconn.models import ClientAuthMethod, GrantType, Provider, Token, TokenStatus
from tests.conftest import consent, deliver, outcome
from tests.scripted_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/oauthconn"


@pytest.fixture
def api(staff) -> APIClient:
    client = APIClient()
    client.force_login(staff)
    return client


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="pw")


def logged_in(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def connect(client: APIClient, url: str, connection, **data) -> Token:
    """POST the API's authorize/connect URL, then play the browser: consent and callback."""
    response = client.post(url, data, format="json")
    assert response.status_code == 200, response.json()
    assert response["Cache-Control"] == "no-store"
    callback = deliver(client, connection, consent(client, response.json()["authorization_url"]))
    assert callback.status_code == 303, callback.content[:300]
    return Token.objects.get(
        connection=connection, owner=callback.wsgi_request.user if connection.per_user else None
    )


@pytest.fixture
def connected(api, make_connection, as_log):
    connection = make_connection(test_path="me/")
    connect(api, f"{API}/connections/{connection.pk}/authorize/", connection)
    as_log.clear()
    return connection


# --- staff on shared connections ------------------------------------------------------------------


def test_authorize_returns_a_url_bound_to_the_callers_session(api, staff, make_connection):
    connection = make_connection()

    token = connect(api, f"{API}/connections/{connection.pk}/authorize/", connection)

    assert token.is_connected and token.authorized_by == staff
    shown = api.get(f"{API}/connections/{connection.pk}/").json()["token"]
    assert shown["status"] == "active" and shown["connected"] is True
    assert shown["granted_scopes"] == ["read", "write"]
    assert shown["expires_at"] is not None
    assert [e["kind"] for e in shown["recent_events"]] == ["authorized"]
    assert shown["recent_events"][0]["actor"] == "staff"


def test_the_authorization_url_cannot_be_completed_in_another_session(
    api, staff, make_connection, as_log
):
    connection = make_connection()
    url = api.post(f"{API}/connections/{connection.pk}/authorize/").json()["authorization_url"]
    query = consent(api, url)

    other = logged_in(staff)
    response = outcome(other, deliver(other, connection, query))

    assert response.status_code == 400
    assert as_log.to("/demo-oauth/token/") == []
    assert not Token.objects.filter(connection=connection).exists()


def test_refresh_renews_the_token_once(api, connected, as_log):
    before = Token.objects.get(connection=connected).access_token.reveal()

    response = api.post(f"{API}/connections/{connected.pk}/refresh/")

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "active"
    assert [e["kind"] for e in response.json()["recent_events"]][0] == "refreshed"
    assert len(as_log.to("/demo-oauth/token/")) == 1
    assert Token.objects.get(connection=connected).access_token.reveal() != before


def test_test_calls_the_api_with_the_token(api, connected, as_log):
    response = api.post(f"{API}/connections/{connected.pk}/test/")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status_code"] == 200 and body["url"].endswith("/demo-api/me/")
    assert '"username": "staff"' in body["body_excerpt"]
    (call,) = as_log.to("/demo-api/me/")
    assert call.headers["Authorization"].startswith("Bearer ")


def test_disconnect_revokes_at_the_provider_then_forgets(api, connected, as_log):
    response = api.post(f"{API}/connections/{connected.pk}/disconnect/")

    assert response.status_code == 200
    assert response.json()["revoked_at_provider"] is True
    assert len(as_log.to("/demo-oauth/revoke_token/")) == 2
    token = Token.objects.get(connection=connected)
    assert token.status == TokenStatus.REVOKED and token.access_token is None
    assert not AccessToken.objects.exists()


def test_switching_to_per_user_revokes_and_removes_the_shared_grant(api, connected, as_log):
    response = api.patch(f"{API}/connections/{connected.pk}/", {"per_user": True}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["per_user"] is True and response.json()["token"] is None
    assert len(as_log.to("/demo-oauth/revoke_token/")) == 2
    assert not Token.objects.filter(connection=connected).exists()
    assert not AccessToken.objects.exists()


def test_delete_revokes_first(api, connected, as_log):
    response = api.delete(f"{API}/connections/{connected.pk}/")

    assert response.status_code == 204
    assert len(as_log.to("/demo-oauth/revoke_token/")) == 2
    assert not AccessToken.objects.exists()
    assert not Token.objects.exists()


def test_delete_revokes_every_grant_that_holds_a_credential(api, connected, as_log):
    """The API and the admin revoke the same grants before a delete: here a refresh token
    whose access token is already gone (the API used to skip it as "not connected")."""
    Token.objects.filter(connection=connected).update(access_token=None)
    as_log.clear()

    assert api.delete(f"{API}/connections/{connected.pk}/").status_code == 204

    (revoke,) = as_log.to("/demo-oauth/revoke_token/")
    assert revoke.form["token_type_hint"] == ["refresh_token"]
    assert not Token.objects.exists()


def test_client_credentials_authorize_fetches_a_token_at_once(api, make_connection, as_log):
    connection = make_connection("svc", grant_type=GrantType.CLIENT_CREDENTIALS)

    response = api.post(f"{API}/connections/{connection.pk}/authorize/")

    assert response.status_code == 200, response.json()
    assert response.json()["authorization_url"] is None
    assert response.json()["token"]["status"] == "active"
    (call,) = as_log.to("/demo-oauth/token/")
    assert call.form["grant_type"] == ["client_credentials"]


def test_token_authentication_works_without_csrf(staff, connected):
    key = AuthToken.objects.create(user=staff).key
    client = APIClient(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {key}")

    assert client.get(f"{API}/connections/").status_code == 200
    response = client.post(f"{API}/connections/{connected.pk}/refresh/")
    assert response.status_code == 200, response.json()


# --- misbehaving providers map to stable codes ----------------------------------------------------


@pytest.fixture
def broken(api, make_connection, scripted_server):
    """A connected connection whose token endpoint now points at a scripted server."""
    provider = Provider.objects.create(
        slug="broken",
        name="Broken",
        authorization_endpoint=scripted_server.url("/authorize"),
        token_endpoint=scripted_server.url("/token"),
    )
    connection = make_connection("flaky", provider_=provider)
    Token.objects.create(
        connection=connection,
        access_token="old-access",
        refresh_token="old-refresh",
        expires_at=timezone.now() - timedelta(seconds=5),
    )
    return connection


def test_provider_outage_is_503_with_retry_after_and_keeps_the_refresh_token(
    api, broken, scripted_server
):
    scripted_server.add("/token", Reply(status=503, headers={"Retry-After": "120"}))

    response = api.post(f"{API}/connections/{broken.pk}/refresh/")

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "provider_unavailable" and body["retry_after"] >= 120
    assert response["Retry-After"] == str(body["retry_after"])
    assert b"old-" not in response.content
    token = Token.objects.get(connection=broken)
    assert token.status == TokenStatus.FAILING and token.refresh_token.reveal() == "old-refresh"


def test_invalid_grant_is_409_needs_reauthorization(api, broken, scripted_server):
    scripted_server.add("/token", Reply(status=400, body={"error": "invalid_grant"}))

    response = api.post(f"{API}/connections/{broken.pk}/refresh/")

    assert response.status_code == 409
    assert response.json()["code"] == "needs_reauthorization"
    assert b"old-refresh" not in response.content
    assert Token.objects.get(connection=broken).status == TokenStatus.NEEDS_REAUTH


def test_unreachable_provider_is_503(api, make_connection, unused_port):
    provider = Provider.objects.create(
        slug="gone", name="Gone", token_endpoint=f"http://127.0.0.1:{unused_port}/token"
    )
    connection = make_connection("gone", provider_=provider, grant_type="client_credentials")

    response = api.post(f"{API}/connections/{connection.pk}/refresh/")

    assert response.status_code == 503
    assert response.json()["code"] == "provider_unavailable"


# --- discovery ------------------------------------------------------------------------------------


def metadata(issuer: str, **overrides) -> dict:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "revocation_endpoint": f"{issuer}/revoke",
        "code_challenge_methods_supported": ["S256"],
        **overrides,
    }


def test_create_a_provider_from_its_issuer(api, scripted_server):
    issuer = scripted_server.url("").rstrip("/")
    scripted_server.add("/.well-known/openid-configuration", Reply(body=metadata(issuer)))

    response = api.post(
        f"{API}/providers/from-issuer/", {"issuer": issuer, "slug": "idp"}, format="json"
    )

    assert response.status_code == 201, response.json()
    provider = Provider.objects.get(slug="idp")
    assert provider.token_endpoint == f"{issuer}/token"
    assert provider.code_challenge_methods == ["S256"] and provider.discovered_at
    assert response.json()["token_endpoint"] == f"{issuer}/token"


def test_from_issuer_reuses_the_provider_of_the_same_server(api, scripted_server):
    """As the wizard does: a second discovery of one server answers with its existing row."""
    issuer = scripted_server.url("").rstrip("/")
    scripted_server.default("/.well-known/openid-configuration", Reply(body=metadata(issuer)))
    url = f"{API}/providers/from-issuer/"
    first = api.post(url, {"issuer": issuer, "slug": "idp"}, format="json")

    again = api.post(url, {"issuer": issuer, "slug": "idp-2"}, format="json")

    assert first.status_code == 201 and again.status_code == 200, again.json()
    assert again.json()["id"] == first.json()["id"] and again.json()["slug"] == "idp"
    assert list(Provider.objects.values_list("slug", flat=True)) == ["idp"]


def test_failed_discovery_is_an_error_with_a_code_and_creates_nothing(api, scripted_server):
    issuer = scripted_server.url("").rstrip("/")
    scripted_server.default("/.well-known/openid-configuration", Reply(status=500, body="boom"))

    response = api.post(
        f"{API}/providers/from-issuer/", {"issuer": issuer, "slug": "idp"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["code"] == "discovery_failed"
    assert "HTTP 500" in response.json()["detail"]
    assert b"boom" not in response.content  # no response oracle (SECURITY §3.5)
    assert not Provider.objects.filter(slug="idp").exists()


def test_refresh_discovery_updates_and_refuses_moving_authorized_connections(
    api, make_connection, scripted_server
):
    issuer = scripted_server.url("").rstrip("/")
    path = "/.well-known/openid-configuration"
    provider = Provider.objects.create(
        slug="idp",
        name="IdP",
        **{k: v for k, v in metadata(issuer).items() if k != "code_challenge_methods_supported"},
    )
    scripted_server.add(path, Reply(body=metadata(issuer, scopes_supported=["openid"])))
    response = api.post(f"{API}/providers/{provider.pk}/refresh-discovery/")
    assert response.status_code == 200, response.json()
    assert response.json()["scopes_supported"] == ["openid"]

    connection = make_connection("on-idp", provider_=provider)
    Token.objects.create(connection=connection, access_token="a", refresh_token="r")
    moved = metadata(issuer, token_endpoint="https://elsewhere.example/token")
    scripted_server.add(path, Reply(body=moved))

    response = api.post(f"{API}/providers/{provider.pk}/refresh-discovery/")

    assert response.status_code == 400
    assert "on-idp" in response.json()["fields"]["token_endpoint"][0]
    provider.refresh_from_db()
    assert provider.token_endpoint == f"{issuer}/token"


# --- end users: only their own per-user grants ----------------------------------------------------


@pytest.fixture
def google(make_connection):
    return make_connection("google", per_user=True, auth_method=ClientAuthMethod.NONE)


def test_users_connect_and_see_only_their_own_grant(alice, bob, google, make_connection):
    make_connection("crm")  # shared: not listed for end users
    as_alice, as_bob = logged_in(alice), logged_in(bob)

    token = connect(as_alice, f"{API}/me/connections/google/connect/", google)

    assert token.owner == alice
    (mine,) = as_alice.get(f"{API}/me/connections/").json()["results"]
    assert mine["slug"] == "google" and mine["token"]["status"] == "active"
    (theirs,) = as_bob.get(f"{API}/me/connections/").json()["results"]
    assert theirs["token"] is None
    assert as_bob.get(f"{API}/me/connections/crm/").status_code == 404


def test_a_user_cannot_disconnect_another_users_grant(alice, bob, google):
    connect(logged_in(alice), f"{API}/me/connections/google/connect/", google)

    response = logged_in(bob).post(f"{API}/me/connections/google/disconnect/")

    assert response.status_code == 409 and response.json()["code"] == "not_connected"
    assert Token.objects.get(owner=alice).is_connected


def test_users_disconnect_their_own_grant(alice, google, as_log):
    as_alice = logged_in(alice)
    connect(as_alice, f"{API}/me/connections/google/connect/", google)

    response = as_alice.post(f"{API}/me/connections/google/disconnect/")

    assert response.status_code == 200
    assert Token.objects.get(owner=alice).status == TokenStatus.REVOKED
    assert as_log.to("/demo-oauth/revoke_token/")


def test_staff_see_and_act_on_their_own_per_user_grant_only(api, alice, google):
    connect(logged_in(alice), f"{API}/me/connections/google/connect/", google)

    assert api.get(f"{API}/connections/{google.pk}/").json()["token"] is None
    assert api.get(f"{API}/connections/?status=active").json()["results"] == []
    assert api.get(f"{API}/connections/?status=not_connected").json()["count"] == 1
    for action in ("refresh", "disconnect"):
        response = api.post(f"{API}/connections/{google.pk}/{action}/")
        assert response.status_code == 409 and response.json()["code"] == "not_connected"
    assert Token.objects.get(owner=alice).is_connected


def test_return_to_must_stay_on_this_site(alice, google):
    response = logged_in(alice).post(
        f"{API}/me/connections/google/connect/",
        {"return_to": "https://evil.example/"},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["return_to"]

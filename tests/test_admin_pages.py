"""The connection pages: change list badges and filters, the status panel, the Refresh, Test
and Disconnect buttons (POST, CSRF, permissions), and R5 on the change form."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from oauthconn.flows.keys import rotate_key
from oauthconn.flows.probe import probe_connection as probe
from oauthconn.models import Connection, Event, EventKind, Provider, Token, TokenStatus
from oauthconn.status import filter_connections
from tests.conftest import authorize
from tests.scripted_server import Reply


def url(name: str, connection: Connection) -> str:
    return reverse(f"admin:oauthconn_connection_{name}", args=[connection.pk])


@pytest.fixture
def connected(make_connection, staff_client):
    connection = make_connection("crm", test_path="me/")
    assert authorize(staff_client, connection).status_code == 303
    return connection


def change_data(connection: Connection, **overrides) -> dict:
    data = {
        "name": connection.name,
        "slug": connection.slug,
        "provider": connection.provider_id,
        "grant_type": connection.grant_type,
        "client_id": connection.client_id,
        "new_client_secret": "",
        "client_auth_method": connection.client_auth_method,
        "scopes": connection.scopes,
        "extra_authorize_params": "{}",
        "extra_token_params": "{}",
        "api_base_url": connection.api_base_url,
        "test_path": connection.test_path,
        "token_lifetime": "",
        "retry_rate_limited": "",
        "max_attempts": connection.max_attempts,
        "max_retry_wait": connection.max_retry_wait,
        "refresh_on_status": ", ".join(map(str, connection.refresh_on_status)),
    }
    data.update(overrides)
    return data


# --- change list ------------------------------------------------------------------------------


def test_change_list_shows_badges_and_never_a_secret(connected, staff_client):
    token = connected.tokens.get()
    html = staff_client.get(reverse("admin:oauthconn_connection_changelist")).content.decode()
    assert 'class="oauthconn-badge oauthconn-connected">Connected' in html
    assert "Shared" in html
    for secret in (connected.client_secret.reveal(), token.access_token.reveal()):
        assert secret not in html


def test_status_filter(connected, make_connection, provider):
    idle = make_connection("idle")
    failing = make_connection("failing")
    Token.objects.create(connection=failing, status=TokenStatus.FAILING, access_token="x")
    expiring = make_connection("expiring")
    Token.objects.create(
        connection=expiring, access_token="x", expires_at=timezone.now() + timedelta(hours=1)
    )
    everything = Connection.objects.all()

    def slugs(status):
        return sorted(filter_connections(everything, status).values_list("slug", flat=True))

    assert slugs("connected") == ["crm"]
    assert slugs("not_connected") == ["idle"]
    assert slugs("failing") == ["failing"]
    assert slugs("expiring") == ["expiring"]
    assert idle.pk  # silence: created for the not_connected case


def test_change_list_filter_and_search(connected, make_connection, staff_client):
    make_connection("other")
    changelist = reverse("admin:oauthconn_connection_changelist")
    html = staff_client.get(changelist, {"status": "not_connected"}).content.decode()
    assert ">Other<" in html and ">Crm<" not in html
    html = staff_client.get(changelist, {"q": "crm"}).content.decode()
    assert ">Crm<" in html and ">Other<" not in html


# --- the connection page ----------------------------------------------------------------------


def test_connection_page_shows_the_grant(connected, staff_client):
    response = staff_client.get(url("change", connected))
    html = response.content.decode()
    assert response["X-Frame-Options"] == "DENY"
    assert "Connected" in html and "by staff" in html
    assert "Requested scopes" in html and "Granted scopes" in html
    assert "Authorized" in html  # the recent events
    for name in ("_authorize", "_refresh", "_test", "_disconnect"):
        assert f'name="{name}"' in html
    assert connected.tokens.get().access_token.reveal() not in html


def test_refresh_now(connected, staff_client, as_log):
    before = connected.tokens.get().access_token.reveal()
    response = staff_client.post(url("refresh", connected))
    assert response.status_code == 303
    assert connected.tokens.get().access_token.reveal() != before
    assert as_log.to("/demo-oauth/token/")[-1].form["grant_type"] == ["refresh_token"]


def test_test_button_shows_status_and_escaped_body(connected, staff_client):
    response = staff_client.post(url("test", connected))
    html = response.content.decode()
    assert "HTTP 200" in html and "&quot;username&quot;: &quot;staff&quot;" in html


def test_probe_cuts_the_body_and_reports_errors(make_connection, staff_client, scripted_server):
    connection = make_connection("crm")
    authorize(staff_client, connection)
    connection.api_base_url = scripted_server.url("/api/")
    connection.test_path = "me"
    connection.save()
    scripted_server.default("/api/me", Reply(status=500, body="<b>" + "x" * 5000))
    result = probe(connection)
    assert result.status_code == 500 and not result.ok
    assert len(result.body_excerpt) < 600 and result.body_excerpt.startswith("<b>x")
    response = staff_client.post(url("test", connection))
    assert "&lt;b&gt;x" in response.content.decode()


def test_disconnect_asks_then_revokes_and_wipes(connected, staff_client, as_log):
    first = staff_client.post(url("disconnect", connected))
    assert first.status_code == 200 and b"Yes, disconnect" in first.content
    assert connected.tokens.get().access_token is not None
    response = staff_client.post(url("disconnect", connected), {"confirm": "yes"})
    assert response.status_code == 303
    token = connected.tokens.get()
    assert token.access_token is None and token.status == TokenStatus.REVOKED
    assert as_log.to("/demo-oauth/revoke_token/")


@pytest.mark.parametrize("name", ["refresh", "test", "disconnect"])
def test_buttons_are_post_only(connected, staff_client, name):
    assert staff_client.get(url(name, connected)).status_code == 403


@pytest.mark.parametrize(
    "name, perm",
    [
        ("refresh", "refresh_connection"),
        ("test", "refresh_connection"),
        ("disconnect", "disconnect_connection"),
    ],
)
def test_buttons_need_their_permission(connected, django_user_model, name, perm):
    user = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_connection"))
    browser = Client()
    browser.force_login(user)
    assert browser.post(url(name, connected), {"confirm": "yes"}).status_code == 403
    assert connected.tokens.get().access_token is not None
    user.user_permissions.add(Permission.objects.get(codename=perm))
    user = django_user_model.objects.get(pk=user.pk)
    browser.force_login(user)
    assert browser.post(url(name, connected), {"confirm": "yes"}).status_code in (200, 303)


def test_buttons_need_the_csrf_token(connected, staff):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff)
    response = browser.post(url("disconnect", connected), {"confirm": "yes"})
    assert response.status_code == 403
    assert connected.tokens.get().access_token is not None


# --- switching whose grants a connection has -----------------------------------------------------


def test_switching_to_per_user_revokes_and_removes_the_shared_grant(
    connected, staff_client, staff, as_log
):
    """The shared grant could never be looked up again, and the proactive refresh would keep
    renewing it for nobody."""
    as_log.clear()
    data = change_data(connected, per_user="on")
    response = staff_client.post(url("change", connected), data, follow=True)

    assert response.status_code == 200
    assert "1 grant of its old kind revoked at the provider and removed" in (
        response.content.decode()
    )
    revocations = as_log.to("/demo-oauth/revoke_token/")
    assert [r.form["token_type_hint"] for r in revocations] == [["refresh_token"], ["access_token"]]
    assert not connected.tokens.exists()
    assert Event.objects.filter(connection=connected, kind="revoked").exists()

    assert authorize(staff_client, connected).status_code == 303  # staff's own grant now
    assert connected.tokens.get().owner == staff
    as_log.clear()
    staff_client.post(url("change", connected), change_data(connected, name="R", per_user="on"))
    assert connected.tokens.get().access_token is not None  # another edit keeps grants
    assert as_log.to("/demo-oauth/revoke_token/") == []


# --- R5: security-relevant edits ----------------------------------------------------------------


def test_moving_the_api_requires_the_secret_again(connected, staff_client):
    data = change_data(connected, api_base_url="https://new.example/api/")
    response = staff_client.post(url("change", connected), data)
    assert response.status_code == 200
    assert "re-enter the client secret" in response.content.decode()
    connected.refresh_from_db()
    assert connected.api_base_url != "https://new.example/api/"
    assert connected.tokens.get().access_token is not None


def test_security_edit_with_secret_drops_tokens_without_revoking(connected, staff_client, as_log):
    other = Provider.objects.create(
        slug="new",
        name="New",
        token_endpoint="https://new.example/token",
        authorization_endpoint="https://new.example/authorize",
    )
    as_log.clear()
    data = change_data(connected, provider=other.pk, new_client_secret="typed-again")
    response = staff_client.post(url("change", connected), data)
    assert response.status_code == 302
    token = connected.tokens.get()
    assert token.access_token is None and token.refresh_token is None
    assert token.status == TokenStatus.NEEDS_REAUTH
    assert as_log.requests == []  # nothing sent to either host
    event = Event.objects.filter(connection=connected, kind=EventKind.NEEDS_REAUTH).get()
    assert event.data["fields"] == ["provider"]
    connected.refresh_from_db()
    assert connected.client_secret.reveal() == "typed-again"


def test_change_form_refuses_a_parameter_the_authorization_endpoint_has(connected, staff_client):
    """The change form checks extra parameters against the provider's authorization endpoint,
    as the wizard and the API do (it used to accept one that would be sent twice)."""
    Provider.objects.filter(pk=connected.provider_id).update(
        authorization_endpoint=connected.provider.authorization_endpoint + "?prompt=consent"
    )
    data = change_data(connected, extra_authorize_params='{"prompt": "login"}')
    response = staff_client.post(url("change", connected), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["extra_authorize_params"]
    assert "already in the endpoint's query" in errors[0]
    connected.refresh_from_db()
    assert connected.extra_authorize_params == {}


def test_harmless_edit_keeps_the_grant(connected, staff_client):
    data = change_data(connected, name="Renamed")
    assert staff_client.post(url("change", connected), data).status_code == 302
    assert connected.tokens.get().access_token is not None


def provider_data(provider: Provider, **overrides) -> dict:
    data = {
        "name": provider.name,
        "slug": provider.slug,
        "preset": "",
        "issuer": "",
        "authorization_endpoint": provider.authorization_endpoint,
        "token_endpoint": provider.token_endpoint,
        "revocation_endpoint": provider.revocation_endpoint,
        "userinfo_endpoint": "",
        "jwks_uri": "",
        "scope_separator": " ",
        "supported_grant_types": "[]",
        "code_challenge_methods": "[]",
        "token_endpoint_auth_methods": "[]",
        "scopes_supported": "[]",
        "id_token_signing_algs": "[]",
        "metadata": "{}",
    }
    data.update(overrides)
    return data


def test_provider_in_use_cannot_move_its_endpoints(connected, staff_client):
    provider = connected.provider
    data = provider_data(provider, token_endpoint="https://evil.example/token")
    response = staff_client.post(
        reverse("admin:oauthconn_provider_change", args=[provider.pk]), data
    )
    assert response.status_code == 200
    assert "would send them to another server" in response.content.decode()
    provider.refresh_from_db()
    assert provider.token_endpoint != "https://evil.example/token"


def test_a_signing_key_also_keeps_the_provider_in_place(make_connection, staff_client):
    """A private_key_jwt connection holds no secret and no grant yet, but its signed
    assertions would go to the new token endpoint: the admin refuses, as the API does."""
    connection = make_connection("jwt", auth_method="private_key_jwt")
    connection.client_secret = None
    connection.save()
    rotate_key(connection)
    provider = connection.provider
    response = staff_client.post(
        reverse("admin:oauthconn_provider_change", args=[provider.pk]),
        provider_data(provider, token_endpoint="https://evil.example/token"),
    )
    assert response.status_code == 200
    assert "would send them to another server" in response.content.decode()
    provider.refresh_from_db()
    assert provider.token_endpoint != "https://evil.example/token"


# --- the per-user page ------------------------------------------------------------------------


def test_per_user_page_connect_and_disconnect(make_connection, client, django_user_model):
    from oauthconn.models import GrantType

    make_connection("crm")  # shared: not listed for users
    personal = make_connection("drive", per_user=True, grant_type=GrantType.AUTHORIZATION_CODE_PKCE)
    alice = django_user_model.objects.create_user("alice", password="pw")
    client.force_login(alice)
    page = reverse("oauthconn:my_connections")
    html = client.get(page).content.decode()
    assert 'id="connection-drive"' in html and 'id="connection-crm"' not in html
    assert "Not connected" in html and "Connect your Test authorization server account" in html
    assert authorize(client, personal).status_code == 303
    html = client.get(page).content.decode()
    assert "Connected" in html and 'name="disconnect"' in html
    assert personal.tokens.get(owner=alice).access_token.reveal() not in html
    client.post(reverse("oauthconn:disconnect", args=["drive"]))
    assert "Not connected" in client.get(page).content.decode()


# --- flows used by the pages ------------------------------------------------------------------


def test_probe_calls_userinfo_with_the_token_when_no_test_path(
    make_connection, staff_client, scripted_server
):
    connection = make_connection("crm")
    authorize(staff_client, connection)
    connection.provider.userinfo_endpoint = scripted_server.url("/userinfo")
    connection.provider.save()
    scripted_server.default("/userinfo", Reply(body={"sub": "42"}))
    result = probe(connection)
    assert result.status_code == 200 and '"sub": "42"' in result.body_excerpt
    sent = scripted_server.requests_to("/userinfo")[0].headers["Authorization"]
    assert sent == f"Bearer {connection.tokens.get().access_token.reveal()}"


def test_probe_never_sends_the_token_off_the_api_origin(connected, staff_client, scripted_server):
    connected.test_path = scripted_server.url("/steal")
    connected.save()
    response = staff_client.post(url("test", connected))
    assert "The test failed" in response.content.decode()
    assert scripted_server.requests_to("/steal") == []


def test_after_an_r5_edit_site_code_must_reauthorize(connected, as_log):
    from oauthconn import get_connection
    from oauthconn.exceptions import ReauthorizationRequired
    from oauthconn.flows import invalidate_grants

    assert invalidate_grants(connected, ["api_base_url"]) == 1
    as_log.clear()
    with pytest.raises(ReauthorizationRequired):
        get_connection("crm").token()
    assert as_log.requests == []


def test_invalidate_grants_covers_every_user(make_connection, client, django_user_model):
    from oauthconn.flows import invalidate_grants

    connection = make_connection("drive", per_user=True)
    for name in ("ann", "bob"):
        client.force_login(django_user_model.objects.create_user(name, password="pw"))
        authorize(client, connection)
    assert invalidate_grants(connection, ["client_id"]) == 2
    assert set(connection.tokens.values_list("status", flat=True)) == {TokenStatus.NEEDS_REAUTH}
    assert Event.objects.filter(kind=EventKind.NEEDS_REAUTH).count() == 2


def test_refresh_now_without_a_refresh_token_keeps_the_grant(connected, staff_client, as_log):
    token = connected.tokens.get()
    token.refresh_token = None
    token.save()
    html = staff_client.get(url("change", connected)).content.decode()
    assert 'name="_refresh"' not in html
    as_log.clear()
    response = staff_client.post(url("refresh", connected), follow=True)
    assert "has no refresh token" in response.content.decode()
    token.refresh_from_db()
    assert token.status == TokenStatus.ACTIVE and token.access_token is not None
    assert as_log.requests == []


def test_deleting_a_connection_revokes_its_grant_first(connected, staff_client, as_log):
    as_log.clear()
    delete = reverse("admin:oauthconn_connection_delete", args=[connected.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 302
    assert not Connection.objects.filter(pk=connected.pk).exists()
    revocations = as_log.to("/demo-oauth/revoke_token/")
    assert [r.form["token_type_hint"] for r in revocations] == [["refresh_token"], ["access_token"]]

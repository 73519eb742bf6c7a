"""The authorization code flow end to end against django-oauth-toolkit over real HTTP."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, unquote_plus, urlsplit

import pytest
from django.db import connection as db_connection
from oauth2_provider.models import AccessToken, RefreshToken

from oauthconn.models import ClientAuthMethod, Event, GrantType, PendingAuthorization, Token
from tests.conftest import authorize, consent, deliver, outcome, start

pytestmark = pytest.mark.django_db(transaction=True)


def s256(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


def test_pkce_authorization_stores_an_encrypted_grant(staff_client, staff, make_connection, as_log):
    connection = make_connection()
    authorize_url = start(staff_client, connection)
    query = parse_qs(urlsplit(authorize_url).query)
    assert query["response_type"] == ["code"]
    assert query["client_id"] == [connection.client_id]
    assert query["redirect_uri"] == [connection.redirect_uri]
    assert query["scope"] == ["read write"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert len(query["state"][0]) >= 43

    response = deliver(staff_client, connection, consent(staff_client, authorize_url))

    assert response.status_code == 303
    assert "code=" not in response["Location"] and "state=" not in response["Location"]
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]
    (token_request,) = as_log.to("/demo-oauth/token/")
    form = token_request.form
    assert form["grant_type"] == ["authorization_code"]
    assert form["redirect_uri"] == [connection.redirect_uri]
    assert s256(form["code_verifier"][0]) == query["code_challenge"][0]
    assert "client_secret" not in form  # client_secret_basic: in the header only
    token = Token.objects.get(connection=connection, owner=None)
    issued = AccessToken.objects.get(application__client_id=connection.client_id)
    assert token.access_token.reveal() == issued.token
    assert token.refresh_token.reveal() == RefreshToken.objects.get(access_token=issued).token
    assert token.token_type == "Bearer"
    assert token.expires_at is not None and token.expires_at.tzinfo is not None
    assert token.scope == "read write"
    assert token.authorized_by == staff
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT access_token, refresh_token FROM oauthconn_token")
        stored = cursor.fetchone()
    assert issued.token not in stored[0] and token.refresh_token.reveal() not in stored[1]
    (attempt,) = PendingAuthorization.objects.all()  # used, and emptied of its secrets
    assert attempt.consumed_at is not None and attempt.code_verifier is None
    assert Event.objects.filter(connection=connection, kind="authorized").count() == 1


def test_basic_auth_form_encodes_the_client_secret(staff_client, make_connection, as_log):
    connection = make_connection()  # the secret contains ':' and '/'
    authorize(staff_client, connection)
    (token_request,) = as_log.to("/demo-oauth/token/")
    scheme, _, encoded = token_request.headers["Authorization"].partition(" ")
    client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
    assert scheme == "Basic"
    assert unquote_plus(secret) == connection.client_secret.reveal()
    assert "%3A" in secret and "%2F" in secret


def test_authorization_code_without_pkce_and_client_secret_post(
    staff_client, make_connection, as_log
):
    connection = make_connection(
        grant_type=GrantType.AUTHORIZATION_CODE,
        auth_method=ClientAuthMethod.CLIENT_SECRET_POST,
    )
    authorize_url = start(staff_client, connection)
    assert "code_challenge" not in authorize_url

    assert (
        deliver(staff_client, connection, consent(staff_client, authorize_url)).status_code == 303
    )

    (token_request,) = as_log.to("/demo-oauth/token/")
    assert token_request.form["client_secret"] == [connection.client_secret.reveal()]
    assert "code_verifier" not in token_request.form
    assert not token_request.headers["Authorization"]
    assert Token.objects.get(connection=connection).is_connected


def test_public_client_with_pkce(staff_client, make_connection, as_log):
    connection = make_connection(auth_method=ClientAuthMethod.NONE)
    assert authorize(staff_client, connection).status_code == 303
    (token_request,) = as_log.to("/demo-oauth/token/")
    assert token_request.form["client_id"] == [connection.client_id]
    assert "client_secret" not in token_request.form
    assert Token.objects.get(connection=connection).is_connected


def test_reauthorization_replaces_the_grant(staff_client, make_connection):
    connection = make_connection()
    authorize(staff_client, connection)
    first = Token.objects.get(connection=connection).access_token.reveal()
    authorize(staff_client, connection)
    assert Token.objects.filter(connection=connection).count() == 1
    assert Token.objects.get(connection=connection).access_token.reveal() != first


def test_connection_page_says_connected(staff_client, make_connection):
    connection = make_connection()
    response = authorize(staff_client, connection)
    page = staff_client.get(response["Location"])
    assert page.status_code == 200
    assert b"Connected" in page.content
    assert b"is connected" in page.content  # the flash message
    token = Token.objects.get(connection=connection)
    assert token.access_token.reveal().encode() not in page.content


def test_per_user_connections_are_isolated(client, django_user_model, make_connection):
    from oauthconn import get_connection

    connection = make_connection("drive", per_user=True)
    alice = django_user_model.objects.create_user("alice", password="pw")
    bob = django_user_model.objects.create_user("bob", password="pw")
    client.force_login(alice)
    assert authorize(client, connection)["Location"] == "/oauthconn/"
    client.force_login(bob)
    authorize(client, connection)

    alice_token = get_connection("drive", owner=alice).access_token
    bob_token = get_connection("drive", owner=bob).access_token
    assert alice_token != bob_token
    assert AccessToken.objects.get(token=alice_token).user == alice
    assert AccessToken.objects.get(token=bob_token).user == bob
    page = client.get("/oauthconn/")
    assert b"Disconnect" in page.content and alice_token.encode() not in page.content


def test_start_needs_post_csrf_and_permission(client, django_user_model, make_connection):
    connection = make_connection()
    url = f"/oauthconn/connect/{connection.slug}/"
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(viewer)
    assert client.get(url).status_code == 405
    assert client.post(url).status_code == 403  # staff without authorize_connection

    from django.test import Client

    staff = django_user_model.objects.create_superuser("root", "r@example.com", "pw")
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(staff)
    assert csrf_client.post(url).status_code == 403
    assert not PendingAuthorization.objects.exists()


def test_start_ignores_request_host_and_protocol_parameters(staff_client, make_connection):
    connection = make_connection()
    response = staff_client.post(
        f"/oauthconn/connect/{connection.slug}/",
        {"scope": "admin", "redirect_uri": "https://evil.example/cb"},
        HTTP_X_FORWARDED_HOST="evil.example",
    )
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["redirect_uri"] == [connection.redirect_uri]
    assert query["scope"] == ["read write"]
    assert response["X-Frame-Options"] == "DENY"


def test_pending_attempts_per_browser_are_bounded(staff_client, make_connection, settings):
    connection = make_connection()
    first = start(staff_client, connection)
    for _ in range(20):
        start(staff_client, connection)
    assert PendingAuthorization.objects.count() == 5
    first_query = consent(staff_client, first)
    assert outcome(staff_client, deliver(staff_client, connection, first_query)).status_code == 400

"""private_key_jwt in the admin: the wizard offers it as the provider's metadata says, generates
the key pair on save (the whole run against a real Authlib server that fetches our JWKS over
HTTP), and the connection page shows the JWKS URL and rotates the key (POST, CSRF, permission).
"""

from __future__ import annotations

import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from django.contrib.auth.models import Permission
from django.db import connection as db
from django.test import Client
from django.urls import reverse

from oauthconn.flows.keys import current_key_type, rotate_key
from oauthconn.models import ClientAuthMethod, Connection, GrantType, Provider
from tests.authlib_server import Client as RegisteredClient
from tests.scripted_server import Reply
from tests.test_admin_pages import change_data, url
from tests.test_wizard import ADD, PREFIX, basics, client_step, errors, step

PKJ = ClientAuthMethod.PRIVATE_KEY_JWT


@pytest.fixture
def wizard(staff_client):
    assert staff_client.get(ADD).status_code == 200
    return staff_client


def discovered(scripted_server, methods: list[str]) -> str:
    """A provider whose metadata lists ``methods`` for client authentication; its issuer."""
    issuer = scripted_server.url("")
    document = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": methods,
    }
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        scripted_server.default(path, Reply(body=document))
    return issuer


def offered(response) -> list[str]:
    return [
        value
        for value, _ in response.context["wizard"]["form"].fields["client_auth_method"].choices
    ]


def raw_private_key(connection: Connection) -> str:
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT private_key FROM oauthconn_connection WHERE id = %s", [connection.pk]
        )
        return cursor.fetchone()[0]


# --- the wizard offers it per provider metadata -------------------------------------------------


@pytest.mark.parametrize(
    "methods, shown, preselected",
    [
        (["private_key_jwt", "client_secret_basic"], True, "client_secret_basic"),
        (["private_key_jwt"], True, "private_key_jwt"),
        # RFC 8414 §2: metadata without the list means client_secret_basic only.
        ([], False, "client_secret_basic"),
        (["client_secret_post"], False, "client_secret_post"),
    ],
)
def test_offered_only_when_the_provider_lists_it_or_lists_nothing(
    wizard, scripted_server, methods, shown, preselected
):
    basics(wizard, source="issuer", issuer=discovered(scripted_server, methods))
    response = step(wizard, "grant", grant_type=GrantType.AUTHORIZATION_CODE_PKCE)

    assert (PKJ in offered(response)) is shown
    assert ("key_type" in response.context["wizard"]["form"].fields) is shown
    assert ("JWKS URL" in response.content.decode()) is shown
    assert response.context["wizard"]["form"]["client_auth_method"].value() == preselected


def test_a_method_the_provider_does_not_list_is_refused(wizard, scripted_server):
    basics(wizard, source="issuer", issuer=discovered(scripted_server, ["client_secret_post"]))
    step(wizard, "grant", grant_type=GrantType.AUTHORIZATION_CODE_PKCE)

    found = errors(client_step(wizard, client_auth_method=PKJ, client_secret=""), "client")

    assert found["client_auth_method"] == [
        "The provider does not support this client authentication."
    ]


@pytest.mark.parametrize("methods, shown", [(["client_secret_basic"], False), ([], True)])
def test_an_existing_providers_list_counts(wizard, db, methods, shown):
    provider = Provider.objects.create(
        slug="as",
        name="AS",
        token_endpoint="https://as.example/token",
        token_endpoint_auth_methods=methods,
    )
    basics(wizard, source="existing", existing_provider=provider.pk)
    response = step(wizard, "grant", grant_type=GrantType.CLIENT_CREDENTIALS)
    assert (PKJ in offered(response)) is shown


def test_custom_endpoints_offer_it_with_rsa_by_default(wizard):
    basics(wizard, source="custom")
    response = step(wizard, "grant", grant_type=GrantType.CLIENT_CREDENTIALS)
    assert PKJ in offered(response)
    assert response.context["wizard"]["form"]["key_type"].value() == "RSA"
    assert 'readonly value="http://testserver/oauthconn/jwks/crm/"' in response.content.decode()


def test_no_secret_is_asked_and_the_review_announces_the_key_pair(wizard):
    basics(wizard)
    step(wizard, "grant", grant_type=GrantType.AUTHORIZATION_CODE_PKCE)

    response = client_step(wizard, client_auth_method=PKJ, client_secret="", key_type="EC")

    assert response.context["wizard"]["steps"].current == "review"
    html = response.content.decode()
    assert "A new EC P-256 (ES256) key pair will be generated when you save" in html
    assert "<code>http://testserver/oauthconn/jwks/crm/</code> · register it" in html
    assert '<dd class="oauthconn-secret">not used (signed JWT)</dd>' in html
    assert not Connection.objects.exists()  # nothing, and no key, before "Save"
    assert "PRIVATE KEY" not in json.dumps(wizard.session[f"wizard_{PREFIX}"])


# --- a wizard run against a real server ---------------------------------------------------------


def test_wizard_creates_a_signing_connection_and_the_server_accepts_its_key(
    wizard, live_server, authlib_server
):
    issuer = authlib_server.issuer
    provider = Provider.objects.create(
        slug="authlib",
        name="Authlib AS",
        issuer=issuer,
        token_endpoint=f"{issuer}/token",
        token_endpoint_auth_methods=["private_key_jwt"],
    )
    # Registered at the provider before saving: the wizard showed this URL on the client step.
    jwks_path = reverse("oauthconn:jwks", args=["machine"])
    authlib_server.clients["machine-client"] = RegisteredClient(
        "machine-client", live_server.url + jwks_path
    )
    basics(wizard, name="Machine", source="existing", existing_provider=provider.pk)
    step(wizard, "grant", grant_type=GrantType.CLIENT_CREDENTIALS)
    client_step(
        wizard,
        client_id="machine-client",
        client_auth_method=PKJ,
        client_secret="",
        key_type="EC",
        scopes="read",
        api_base_url=f"{issuer}/api/",
    )

    response = step(wizard, "review")

    connection = Connection.objects.get(slug="machine")
    assert response["Location"] == url("change", connection)
    assert connection.client_secret is None
    assert connection.private_key_id and current_key_type(connection) == "EC"
    assert "PRIVATE KEY" not in raw_private_key(connection)
    assert "PRIVATE KEY" in connection.private_key.reveal()
    # The server verified the assertion with the key it fetched from our JWKS view.
    assert connection.tokens.get().access_token.reveal() == authlib_server.issued[0]["access_token"]
    (served,) = wizard.get(jwks_path).json()["keys"]
    assert served["kid"] == connection.private_key_id
    assertion = authlib_server.received[0]["client_assertion"]
    claims = jwt.decode(assertion, jwt.PyJWK(served).key, algorithms=["ES256"], audience=issuer)
    assert claims["iss"] == "machine-client"
    private = serialization.load_pem_private_key(
        connection.private_key.reveal().encode(), password=None
    )
    assert json.loads(jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()))["x"] == served["x"]
    page = wizard.get(response["Location"]).content.decode()
    assert "a token obtained" in page and "A key pair was generated" in page


def test_save_and_authorize_still_sends_the_browser_to_the_provider(wizard):
    basics(wizard)
    step(wizard, "grant", grant_type=GrantType.AUTHORIZATION_CODE_PKCE)
    client_step(wizard, client_auth_method=PKJ, client_secret="")

    response = step(wizard, "review")

    assert response.status_code == 302
    assert response["Location"].startswith("https://as.example/authorize?")
    assert "code_challenge=" in response["Location"]
    connection = Connection.objects.get(slug="crm")
    assert current_key_type(connection) == "RSA"  # the default
    assert connection.client_auth_method == PKJ and connection.client_secret is None


# --- the connection page ------------------------------------------------------------------------


@pytest.fixture
def signing(db) -> Connection:
    provider = Provider.objects.create(
        slug="as", name="AS", issuer="https://as.example", token_endpoint="https://as.example/t"
    )
    connection = Connection.objects.create(
        slug="machine",
        name="Machine",
        provider=provider,
        grant_type=GrantType.CLIENT_CREDENTIALS,
        client_id="machine-client",
        client_auth_method=PKJ,
    )
    rotate_key(connection)
    return connection


def test_connection_page_shows_the_jwks_url_and_never_the_private_key(
    signing, staff_client, settings
):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REDIRECT_BASE_URL": "https://app.example/"}

    html = staff_client.get(url("change", signing)).content.decode()

    jwks = "https://app.example/oauthconn/jwks/machine/"
    assert f'readonly value="{jwks}" id="oauthconn-jwks-url"' in html
    assert 'data-copy="#oauthconn-jwks-url"' in html
    assert f'<code id="oauthconn-key-id">{signing.private_key_id}</code>' in html
    assert 'name="_rotate_key"' in html
    pem_body = signing.private_key.reveal().splitlines()[1:-1]
    assert "PRIVATE KEY" not in html and not any(line in html for line in pem_body)
    assert raw_private_key(signing) not in html
    assert 'name="private_key"' not in html


def test_other_connections_show_no_key_and_cannot_rotate(make_connection, staff_client):
    connection = make_connection("crm")

    html = staff_client.get(url("change", connection)).content.decode()
    response = staff_client.post(url("rotate_key", connection), follow=True)

    assert "oauthconn-jwks-url" not in html and "_rotate_key" not in html
    assert "has no key to rotate" in response.content.decode()
    connection.refresh_from_db()
    assert connection.private_key is None and connection.published_jwks == []


@pytest.mark.parametrize("per_user", [False, True])
def test_rotate_key_changes_the_kid_and_keeps_the_old_public_key(signing, staff_client, per_user):
    Connection.objects.filter(pk=signing.pk).update(per_user=per_user)
    old_kid = signing.private_key_id

    response = staff_client.post(url("rotate_key", signing), {"kind": "EC"}, follow=True)

    signing.refresh_from_db()
    assert signing.private_key_id != old_kid and current_key_type(signing) == "EC"
    assert "stays published at the JWKS URL for 7 days" in response.content.decode()
    served = staff_client.get(reverse("oauthconn:jwks", args=["machine"])).json()["keys"]
    assert [key["kid"] for key in served] == [signing.private_key_id, old_kid]


def test_rotate_key_needs_post_csrf_and_the_change_permission(signing, staff, django_user_model):
    kid = signing.private_key_id
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff)
    assert browser.get(url("rotate_key", signing)).status_code == 403
    assert browser.post(url("rotate_key", signing)).status_code == 403  # no CSRF token
    clerk = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_connection"))
    browser = Client()
    browser.force_login(clerk)
    assert 'name="_rotate_key"' not in browser.get(url("change", signing)).content.decode()
    assert browser.post(url("rotate_key", signing)).status_code == 403
    signing.refresh_from_db()
    assert signing.private_key_id == kid

    clerk.user_permissions.add(Permission.objects.get(codename="change_connection"))
    browser.force_login(django_user_model.objects.get(pk=clerk.pk))
    assert browser.post(url("rotate_key", signing)).status_code == 303
    signing.refresh_from_db()
    assert signing.private_key_id != kid


def test_an_unknown_key_type_changes_nothing(signing, staff_client):
    kid = signing.private_key_id

    response = staff_client.post(url("rotate_key", signing), {"kind": "HS256"}, follow=True)

    assert "Choose a key type: RSA, EC" in response.content.decode()
    signing.refresh_from_db()
    assert signing.private_key_id == kid and len(signing.published_jwks) == 1


# --- the change form ----------------------------------------------------------------------------


def test_switching_to_private_key_jwt_generates_a_key_pair_once(make_connection, staff_client):
    connection = make_connection("crm", grant_type=GrantType.CLIENT_CREDENTIALS)
    data = change_data(connection, client_auth_method=PKJ)

    response = staff_client.post(url("change", connection), data, follow=True)

    connection.refresh_from_db()
    assert connection.client_auth_method == PKJ and connection.private_key_id
    assert "PRIVATE KEY" not in raw_private_key(connection)
    assert "Register the JWKS URL http://testserver/oauthconn/jwks/crm/" in (
        response.content.decode()
    )
    kid = connection.private_key_id
    staff_client.post(url("change", connection), change_data(connection))
    connection.refresh_from_db()
    assert connection.private_key_id == kid and len(connection.published_jwks) == 1

"""Connecting by an API's URL (issue 13, part 3), over real HTTP.

The API is tests/resource_server.py: it publishes RFC 9728 metadata naming an oidc-provider
(tests/oidc_provider_par.py) that offers open dynamic registration with management (RFC 7591,
RFC 7592) and issues JWT access tokens for that API when asked with ``resource`` (RFC 8707).
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.db import connection as db_connection
from django.urls import reverse

from oauthconn import get_connection
from oauthconn.exceptions import DiscoveryFailed, RegistrationRefused
from oauthconn.flows.registration import discover_resource, register
from oauthconn.flows.tokens import renew_now
from oauthconn.models import Connection, GrantType, TokenStatus
from tests.conftest import deliver
from tests.oidc_provider_server import OidcServer
from tests.resource_server import WELL_KNOWN, ResourceServer
from tests.scripted_server import Reply
from tests.test_wizard import ADD, PREFIX, basics, step

pytestmark = [pytest.mark.strict_peer, pytest.mark.django_db(transaction=True)]


# --- RFC 9728: from the API's URL to its authorization server --------------------------------


def test_the_apis_metadata_leads_to_its_discovered_authorization_server(
    resource_server: ResourceServer, registration_server: OidcServer
):
    found = discover_resource(resource_server.resource)

    assert found.resource == resource_server.resource
    assert found.provider_fields["issuer"] == registration_server.issuer
    assert found.provider_fields["registration_endpoint"] == f"{registration_server.issuer}/reg"
    assert found.scopes == ("read", "write")


def test_without_a_well_known_document_the_401_challenge_names_the_metadata(resource_server):
    other = f"{resource_server.base}/other/"
    resource_server.challenges["/other/"] = f"{resource_server.base}/meta/other"
    resource_server.documents["/meta/other"] = {
        **resource_server.metadata(),
        "resource": other,
    }

    found = discover_resource(other)

    assert found.provider_fields["issuer"] == resource_server.issuer


@pytest.mark.parametrize("address", ["10.0.0.1", "169.254.169.254"])
def test_metadata_naming_a_private_address_is_refused_by_the_ssrf_guard(resource_server, address):
    resource_server.documents[f"{WELL_KNOWN}/api"] = {
        **resource_server.metadata(),
        "authorization_servers": [f"https://{address}/"],
    }

    with pytest.raises(DiscoveryFailed, match="private, loopback or reserved"):
        discover_resource(resource_server.resource)


def test_a_challenge_naming_a_metadata_address_is_refused_by_the_ssrf_guard(resource_server):
    resource_server.documents.pop(f"{WELL_KNOWN}/api")
    resource_server.challenges["/api/"] = "https://169.254.169.254/latest/meta-data/"

    with pytest.raises(DiscoveryFailed, match="private, loopback or reserved"):
        discover_resource(resource_server.resource)


def test_an_authorization_server_whose_issuer_does_not_match_exactly_is_refused(
    resource_server,
):
    resource_server.documents[f"{WELL_KNOWN}/api"] = {
        **resource_server.metadata(),
        "authorization_servers": [resource_server.issuer + "/"],  # one trailing slash
    }

    with pytest.raises(DiscoveryFailed, match="trailing slash"):
        discover_resource(resource_server.resource)


def test_metadata_speaking_for_another_resource_is_refused(resource_server):
    resource_server.documents[f"{WELL_KNOWN}/api"] = {
        **resource_server.metadata(),
        "resource": "https://elsewhere.example/api/",
    }

    with pytest.raises(DiscoveryFailed, match="RFC 9728 §3.3"):
        discover_resource(resource_server.resource)


# --- RFC 7591: a refused registration --------------------------------------------------------


def test_a_refused_registration_is_a_typed_error_with_the_providers_reason(registration_server):
    with pytest.raises(RegistrationRefused) as caught:
        register(
            f"{registration_server.issuer}/reg",
            redirect_uri="http://testserver/oauthconn/callback/x/#fragment",
            client_name="x",
            auth_methods=["client_secret_basic"],
        )
    assert caught.value.status == 400
    assert caught.value.error in ("invalid_redirect_uri", "invalid_client_metadata")
    assert "refused" in str(caught.value)


# --- the wizard, end to end ------------------------------------------------------------------


def connect_by_url(client, resource_server: ResourceServer, slug: str = "api-by-url"):
    response = basics(
        client,
        name="Api by url",
        slug=slug,
        source="resource",
        resource_url=resource_server.resource,
    )
    assert response.context["wizard"]["steps"].current == "grant", response.context["wizard"][
        "form"
    ].errors
    response = step(client, "grant", grant_type=GrantType.AUTHORIZATION_CODE_PKCE)
    form = response.context["wizard"]["form"]
    assert form["register_client"].value() is True
    assert form["api_base_url"].value() == resource_server.resource
    return form


def client_values(form, **changes) -> dict[str, str]:
    values = {
        "client_id": "",
        "client_secret": "",
        "client_auth_method": "client_secret_basic",
        "authorization_endpoint": form["authorization_endpoint"].value(),
        "token_endpoint": form["token_endpoint"].value(),
        "revocation_endpoint": form["revocation_endpoint"].value() or "",
        "userinfo_endpoint": "",
        "scopes": "openid offline_access read",
        "extra_authorize_params": '{"prompt": "consent"}',
        "extra_token_params": "{}",
        "api_base_url": form["api_base_url"].value(),
        "test_path": "me",
        "register_client": "on",
    }
    values.update(changes)
    return values


def test_connect_by_api_url_registers_authorizes_with_resource_and_calls_the_api(
    staff_client, resource_server, registration_server, caplog
):
    caplog.set_level(logging.DEBUG)
    form = connect_by_url(staff_client, resource_server)
    review = step(staff_client, "client", **client_values(form))
    html = review.content.decode()
    assert "Automatic (RFC 7591)" in html and resource_server.resource in html

    saved = staff_client.post(ADD, {f"{PREFIX}-current_step": "review"})

    connection = Connection.objects.get(slug="api-by-url")
    assert connection.registered_automatically and connection.client_id
    assert connection.client_secret is not None  # encrypted at rest (a Sealed value)
    assert connection.registration_access_token is not None
    assert connection.registration_client_uri.startswith(f"{registration_server.issuer}/reg/")
    assert connection.resource == resource_server.resource
    sent = parse_qs(urlsplit(saved["Location"]).query)
    assert sent["resource"] == [resource_server.resource]
    assert (
        deliver(
            staff_client, connection, registration_server.sign_in(saved["Location"])
        ).status_code
        == 303
    )
    token = connection.tokens.get()
    assert token.status == TokenStatus.ACTIVE

    # the token is for the API (aud), so the API accepts it
    answer = get_connection("api-by-url").get("me")
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"sub": "alice", "aud": resource_server.resource}
    # a refresh asks for the same resource (RFC 8707 §2.2): the new token works there too
    assert renew_now(connection).renewed
    assert get_connection("api-by-url").get("me").json()["aud"] == resource_server.resource

    # stored encrypted: the columns hold ciphertext, not what the provider issued
    registration_token = connection.registration_access_token.reveal()
    with db_connection.cursor() as cursor:
        cursor.execute(
            "SELECT client_secret, registration_access_token FROM oauthconn_connection "
            "WHERE id = %s",
            [connection.pk],
        )
        raw = cursor.fetchone()
    assert registration_token not in raw[1]
    assert connection.client_secret.reveal() not in raw[0]

    # the page says so, and no registration access token appears anywhere
    page = staff_client.get(reverse("admin:oauthconn_connection_change", args=[connection.pk]))
    api = staff_client.get(reverse("oauthconn-api:connection-detail", args=[connection.pk]))
    assert "Registered automatically" in page.content.decode()
    assert api.json()["registered_automatically"] is True
    for text in (page.content.decode(), api.content.decode(), caplog.text):
        assert registration_token not in text

    # deleting the connection deletes the registration (RFC 7592)
    management = connection.registration_client_uri
    assert (
        httpx.get(management, headers={"Authorization": f"Bearer {registration_token}"}).status_code
        == 200
    )
    deleted = staff_client.delete(reverse("oauthconn-api:connection-detail", args=[connection.pk]))
    assert deleted.status_code == 204
    gone = httpx.get(management, headers={"Authorization": f"Bearer {registration_token}"})
    assert gone.status_code == 401  # oidc-provider: the client and its token no longer exist
    assert registration_token not in caplog.text
    assert "registration of api-by-url was deleted" in caplog.text


def test_a_refused_registration_in_the_wizard_stores_nothing(
    staff_client, resource_server, registration_server
):
    form = connect_by_url(staff_client, resource_server)
    step(staff_client, "client", **client_values(form, scopes="openid unheard-of"))
    # the provider's registration refuses scopes it does not support
    response = staff_client.post(ADD, {f"{PREFIX}-current_step": "review"})

    assert response.status_code == 200
    assert "could not be registered" in response.content.decode()
    assert not Connection.objects.filter(slug="api-by-url").exists()


def test_a_typed_client_id_and_automatic_registration_do_not_mix(
    staff_client, resource_server, registration_server
):
    form = connect_by_url(staff_client, resource_server)
    response = step(staff_client, "client", **client_values(form, client_id="typed"))
    errors = response.context["wizard"]["form"].errors
    assert errors["client_id"] == ["Leave this empty to register automatically."]
    response = step(staff_client, "client", **client_values(form, register_client=""))
    errors = response.context["wizard"]["form"].errors
    assert errors["client_id"] == ["Enter the client id, or register automatically."]


def test_a_failed_registration_deletion_is_logged_and_does_not_block_deleting(
    staff_client, provider, scripted_server, caplog
):
    caplog.set_level(logging.DEBUG)
    scripted_server.add("/reg/c1", Reply(500, body={"error": "server_error"}))
    canary = "rat-canary-" + "7" * 20
    connection = Connection.objects.create(
        slug="gone",
        name="Gone",
        provider=provider,
        client_id="c1",
        client_secret="s",
        registered_automatically=True,
        registration_access_token=canary,
        registration_client_uri=scripted_server.url("/reg/c1"),
    )

    deleted = staff_client.delete(reverse("oauthconn-api:connection-detail", args=[connection.pk]))

    assert deleted.status_code == 204
    assert not Connection.objects.filter(slug="gone").exists()
    [sent] = scripted_server.requests
    assert sent.method == "DELETE" and sent.headers["authorization"] == f"Bearer {canary}"
    assert "The registration of gone could not be deleted" in caplog.text
    assert canary not in caplog.text

"""Pushed authorization requests in the wizard, on the connection page and in the API (issue 13).

The wizard offers the checkbox only when the provider's metadata names a push endpoint, forced
on when the metadata requires pushed requests; the review and the connection page say what
was chosen. Both providers are real oidc-provider processes: one requiring PAR
(tests/oidc_provider_par.py), the shared one offering it (oidc-provider's default).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from oauthconn.models import Connection, GrantType, Provider, TokenStatus
from tests.conftest import deliver
from tests.oidc_provider_server import OidcServer
from tests.test_wizard import ADD, PREFIX, basics, step

pytestmark = [pytest.mark.strict_peer, pytest.mark.django_db(transaction=True)]


def through_grant(client, issuer: str, slug: str):
    response = basics(client, name=slug.title(), slug=slug, source="issuer", issuer=issuer)
    assert response.context["wizard"]["steps"].current == "grant", response.context["wizard"][
        "form"
    ].errors
    return step(client, "grant", grant_type=GrantType.AUTHORIZATION_CODE_PKCE)


def client_fields(server: OidcServer, client_id: str, **fields) -> dict[str, str]:
    values = {
        "client_id": client_id,
        "client_secret": server.secrets.get(client_id, ""),
        "client_auth_method": "client_secret_basic",
        "authorization_endpoint": f"{server.issuer}/auth",
        "token_endpoint": f"{server.issuer}/token",
        "revocation_endpoint": "",
        "userinfo_endpoint": "",
        "scopes": "openid offline_access",
        "extra_authorize_params": '{"prompt": "consent"}',
        "extra_token_params": "{}",
        "api_base_url": f"{server.issuer}/",
        "test_path": "",
    }
    values.update(fields)
    return values


def test_a_provider_that_requires_par_gets_it_forced_on(staff_client, par_server):
    form = through_grant(staff_client, par_server.issuer, "par-wizard").context["wizard"]["form"]

    field = form.fields["use_par"]
    assert field.disabled and form["use_par"].value() is True
    assert "RFC 9126" in field.help_text and "requires it" in field.help_text

    # a disabled field ignores what is posted: unchecking cannot turn it off
    review = step(staff_client, "client", **client_fields(par_server, "par-basic"))
    html = review.content.decode()
    assert review.context["wizard"]["steps"].current == "review", review.context["wizard"][
        "form"
    ].errors
    assert "Pushed authorization requests" in html and "Yes: required by the provider" in html

    saved = staff_client.post(ADD, {f"{PREFIX}-current_step": "review"})

    connection = Connection.objects.get(slug="par-wizard")
    assert connection.use_par is True and connection.provider.requires_par is True
    query = parse_qs(urlsplit(saved["Location"]).query)
    assert set(query) == {"client_id", "request_uri"}
    deliver(staff_client, connection, par_server.sign_in(saved["Location"]))
    assert connection.tokens.get().status == TokenStatus.ACTIVE


def test_a_provider_that_offers_par_lets_the_admin_choose(staff_client, oidc_server):
    form = through_grant(staff_client, oidc_server.issuer, "strict-basic").context["wizard"]["form"]
    assert not form.fields["use_par"].disabled and form["use_par"].value() is False

    values = client_fields(oidc_server, "strict-basic", use_par="on")
    review = step(staff_client, "client", **values)
    assert '<dd id="oauthconn-review-par">Yes</dd>' in review.content.decode()
    saved = staff_client.post(ADD, {f"{PREFIX}-current_step": "review"})

    connection = Connection.objects.get(slug="strict-basic")
    assert connection.use_par is True and not connection.provider.requires_par
    assert set(parse_qs(urlsplit(saved["Location"]).query)) == {"client_id", "request_uri"}

    page = staff_client.get(reverse("admin:oauthconn_connection_change", args=[connection.pk]))
    html = page.content.decode()
    assert 'id="oauthconn-features"' in html and "Pushed authorization requests" in html
    assert "On (chosen)" in html


def test_no_checkbox_without_a_push_endpoint(staff_client):
    basics(staff_client, name="Custom", source="custom")
    form = step(staff_client, "grant", grant_type=GrantType.AUTHORIZATION_CODE_PKCE).context[
        "wizard"
    ]["form"]
    assert "use_par" not in form.fields


# --- the API ---------------------------------------------------------------------------------


@pytest.fixture
def api_provider(par_server) -> Provider:
    return Provider.objects.create(
        slug="plain",
        name="Plain",
        issuer=par_server.issuer,
        authorization_endpoint=f"{par_server.issuer}/auth",
        token_endpoint=f"{par_server.issuer}/token",
    )


def test_the_api_reads_and_validates_the_choice(staff_client, api_provider, par_server):
    url = reverse("oauthconn-api:connection-list")
    body = {
        "slug": "api-par",
        "name": "API PAR",
        "provider": "plain",
        "client_id": "par-basic",
        "client_secret": par_server.secrets["par-basic"],
        "use_par": True,
    }
    refused = staff_client.post(url, body, content_type="application/json")
    assert refused.status_code == 400
    [reason] = refused.json()["fields"]["use_par"]
    assert reason == (
        "The provider has no pushed authorization request endpoint (RFC 9126) to push to."
    )
    assert not Connection.objects.filter(slug="api-par").exists()

    api_provider.pushed_authorization_request_endpoint = f"{par_server.issuer}/request"
    api_provider.save()
    created = staff_client.post(url, body, content_type="application/json")
    assert created.status_code == 201, created.json()
    assert created.json()["use_par"] is True and created.json()["pushes_requests"] is True
    provider = staff_client.get(
        reverse("oauthconn-api:provider-detail", args=[api_provider.pk])
    ).json()
    assert provider["pushed_authorization_request_endpoint"] == f"{par_server.issuer}/request"
    assert provider["requires_par"] is False

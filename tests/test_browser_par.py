"""The wizard's pushed-authorization choice, pressed in Chromium (issue 13).

The provider is the PAR-requiring oidc-provider (tests/oidc_provider_par.py), discovered from
its issuer; it lets confidential clients push a redirect URI they did not register (RFC 9126
§2.4), which is how this site's run-time origin gets in.
"""

# ruff: noqa: F811  (the fixtures imported from tests/test_browser.py are named as arguments)
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from oauthconn.models import Connection, TokenStatus
from tests.test_browser import page, sign_in, sites, wizard_from_issuer  # noqa: F401  (fixtures shared with it)

pytestmark = pytest.mark.browser


def test_wizard_with_a_provider_that_requires_pushed_requests(page, sites, par_server):
    admin_site, _provider_site = sites
    sign_in(page, admin_site, "admin", "admin-pw", "/admin/")
    wizard_from_issuer(page, admin_site, "Par wizard", par_server.issuer, "authorization_code_pkce")

    # the checkbox is there, checked and locked, with its one-line explanation
    checkbox = page.locator("#id_client-use_par")
    assert checkbox.is_checked() and checkbox.is_disabled()
    assert "RFC 9126" in page.locator(".field-use_par .help").inner_text()
    page.fill("#id_client-client_id", "par-basic")
    page.fill("#id_client-client_secret", par_server.secrets["par-basic"])
    page.fill("#id_client-scopes", "openid offline_access")
    page.fill("#id_client-extra_authorize_params", '{"prompt": "consent"}')
    page.click("input[name='_next']")

    assert page.locator("#oauthconn-review-par").inner_text() == "Yes: required by the provider"
    with page.expect_request(lambda r: r.url.startswith(f"{par_server.issuer}/auth")) as sent:
        page.click("input[value='Save and authorize']")
    assert set(parse_qs(urlsplit(sent.value.url).query)) == {"client_id", "request_uri"}

    # oidc-provider's own login and consent pages
    page.fill("input[name='login']", "alice")
    page.fill("input[name='password']", "any")
    page.click("button[type=submit]")
    page.click("button[type=submit]")  # consent: "Continue"

    page.wait_for_url(f"{admin_site}/admin/oauthconn/connection/*/change/")
    assert page.locator("#oauthconn-status .oauthconn-badge").inner_text() == "Connected"
    assert "On (required by the provider)" in page.locator("#oauthconn-features").inner_text()
    connection = Connection.objects.get(slug="par-wizard")
    assert connection.use_par and connection.tokens.get().status == TokenStatus.ACTIVE


def test_wizard_connect_by_api_url_registers_and_delete_ends_the_registration(
    page, sites, resource_server, registration_server
):
    admin_site, _provider_site = sites
    sign_in(page, admin_site, "admin", "admin-pw", "/admin/")

    page.goto(f"{admin_site}/admin/oauthconn/connection/add/")
    page.fill("#id_basics-name", "Api in browser")
    page.check("input[name='basics-source'][value='resource']")
    assert page.locator(".field-resource_url").is_visible()  # admin.js shows the URL field
    page.fill("#id_basics-resource_url", resource_server.resource)
    page.click("input[name='_next']")
    page.check("input[name='grant-grant_type'][value='authorization_code_pkce']")
    page.click("input[name='_next']")

    assert page.locator("#id_client-register_client").is_checked()
    assert page.input_value("#id_client-api_base_url") == resource_server.resource
    page.fill("#id_client-scopes", "openid read")
    page.fill("#id_client-extra_authorize_params", '{"prompt": "consent"}')
    page.fill("#id_client-test_path", "me")
    page.click("input[name='_next']")

    assert "Automatic (RFC 7591)" in page.locator("#oauthconn-review-registration").inner_text()
    page.click("input[value='Save and authorize']")
    page.wait_for_url(f"{registration_server.issuer}/**")
    page.fill("input[name='login']", "alice")
    page.fill("input[name='password']", "any")
    page.click("button[type=submit]")
    page.click("button[type=submit]")  # consent: "Continue"

    page.wait_for_url(f"{admin_site}/admin/oauthconn/connection/*/change/")
    # the peer's access tokens live 5 s and none is refreshable here: "Expiring" at once
    badge = page.locator("#oauthconn-status .oauthconn-badge").inner_text()
    assert badge in ("Connected", "Expiring")
    features = page.locator("#oauthconn-features").inner_text()
    assert "Registered automatically" in features and resource_server.resource in features
    connection = Connection.objects.get(slug="api-in-browser")
    management = connection.registration_client_uri
    bearer = {"Authorization": f"Bearer {connection.registration_access_token.reveal()}"}
    assert bearer["Authorization"][7:] not in page.content()

    # "Test" calls the API with the token issued for it
    page.click("button[name='_test']")
    page.wait_for_load_state()
    assert "200" in page.locator("body").inner_text()

    # Delete, confirm: the registration is gone at the provider too (RFC 7592)
    assert httpx.get(management, headers=bearer).status_code == 200
    page.goto(f"{admin_site}/admin/oauthconn/connection/{connection.pk}/change/")
    page.click("a.deletelink")
    page.click("input[type=submit]")  # "Yes, I'm sure"
    page.wait_for_url(f"{admin_site}/admin/oauthconn/connection/")
    assert not Connection.objects.filter(slug="api-in-browser").exists()
    assert httpx.get(management, headers=bearer).status_code == 401

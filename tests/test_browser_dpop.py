"""The wizard's DPoP choice in Chromium (RFC 9449; issue 13 part 4): ticked on the client
step, shown on the review, saved with "Save and authorize", which sends the browser to the
provider (oidc-provider with DPoP, discovered from its issuer)."""

from __future__ import annotations

import pytest

from oauthconn.models import Connection
from tests.oidc_provider_server import OidcServer
from tests.test_browser import page, sign_in, sites, wizard_from_issuer  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.strict_peer]


def test_wizard_binds_tokens_with_dpop(page, sites, dpop_server: OidcServer):  # noqa: F811
    admin_site, _provider_site = sites
    sign_in(page, admin_site, "admin", "admin-pw", "/admin/")
    wizard_from_issuer(page, admin_site, "Bound API", dpop_server.issuer, "authorization_code")

    assert "RFC 9449: each grant gets a key pair" in page.inner_text("#content")
    page.fill("#id_client-client_id", "dpop-basic")
    page.fill("#id_client-client_secret", dpop_server.secrets["dpop-basic"])
    page.fill("#id_client-api_base_url", dpop_server.issuer + "/")
    page.check("#id_client-use_dpop")
    page.click("input[name='_next']")

    assert "Bound with DPoP" in page.locator("#oauthconn-review-dpop").inner_text()
    page.click("input[value='Save and authorize']")
    page.wait_for_url(f"{dpop_server.issuer}/**")  # at the provider's login page
    assert Connection.objects.get(slug="bound-api").use_dpop

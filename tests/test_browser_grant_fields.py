"""The API base URL's ``{ask:...}`` inputs on the connect forms, pressed in Chromium.

Sites as in tests/test_browser.py: this site at http://127.0.0.1:<port>, the provider
(django-oauth-toolkit) at http://localhost:<port>. The typed host is ``localhost``, so the
grant's API is the provider's demo API on the live server.
"""

# ruff: noqa: F811  (the fixtures imported from tests/test_browser.py are named as arguments)
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from oauthconn.models import PendingAuthorization, Token
from tests.test_browser import Shots, page, sites  # noqa: F401  (fixtures shared with it)
from tests.test_browser_buttons import (
    BADGE,
    admin_page,
    message,
    press,
    row_status,
    sign_in,
    through_the_provider,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def tenant_connection(sites, make_connection, live_server):
    """A connection whose API host is typed when connecting (made after ``sites``)."""

    def make(slug: str, **fields):
        connection = make_connection(slug, test_path="me/", **fields)
        port = urlsplit(live_server.url).port
        connection.api_base_url = f"http://{{ask:host}}:{port}/demo-api/"
        connection.save(update_fields=["api_base_url"])
        return connection

    return make


def test_your_connections_asks_for_the_host_and_refuses_a_hostile_one(
    page, sites, tenant_connection, live_server
):
    site, provider_site = sites
    connection = tenant_connection("drive", per_user=True)
    shot = Shots(page, "grant-fields-mine-")
    sign_in(page, site, "alice", "alice-pw", "/oauthconn/")
    field = "#connection-drive input[name='ask_host']"
    assert page.locator("#connection-drive label").inner_text() == "Host"

    page.fill(field, "localhost@evil.example")
    press(page, "#connection-drive button[name='connect']")
    assert "Host must be a host name" in message(page, ".messages")
    assert not PendingAuthorization.objects.exists()
    shot("refused")

    page.fill(field, "localhost")
    press(page, "#connection-drive button[name='connect']")
    assert "drive is connected" in through_the_provider(page, provider_site).lower()
    page.goto(f"{site}/oauthconn/")
    assert row_status(page, "drive").startswith("Connected")
    assert f"{live_server.url}/demo-api/" in row_status(page, "drive")
    shot("connected")
    assert Token.objects.get(connection=connection).base_values == {"host": "localhost"}


def test_admin_authorize_asks_for_the_host_and_test_calls_it(
    page, sites, tenant_connection, live_server
):
    admin_site, provider_site = sites
    connection = tenant_connection("crm")
    sign_in(page, admin_site, "admin", "admin-pw", admin_page(connection))
    page.fill("#oauthconn-status input[name='ask_host']", "localhost")
    press(page, "button[name='_authorize']")
    assert "crm is connected" in through_the_provider(page, provider_site).lower()
    page.goto(admin_site + admin_page(connection))
    assert page.locator(BADGE).inner_text() == "Connected"
    assert f"{live_server.url}/demo-api/" in page.locator("#oauthconn-status").inner_text()

    press(page, "button[name='_test']")
    result = page.locator("#oauthconn-test-result").inner_text()
    assert "HTTP 200" in result and f"{live_server.url}/demo-api/me/" in result
    assert '"username": "alice"' in page.locator(".oauthconn-body").inner_text()
    Shots(page, "grant-fields-admin-")("tested")

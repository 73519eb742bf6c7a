"""Request more scopes (docs/scopes.md), pressed in Debian's Chromium: the admin's form on the
connection page, the checkboxes of "Your connections", and the question page site code sends
a person to. Sites and helpers as in tests/test_browser_buttons.py."""

# ruff: noqa: F811  (the fixtures imported from the browser tests are named as arguments)
from __future__ import annotations

import pytest

from oauthconn import get_connection
from oauthconn.exceptions import ScopesRequired
from tests.test_browser import Shots, page, sites  # noqa: F401  (fixtures shared with it)
from tests.test_browser_buttons import (  # noqa: F401  (connect is a fixture)
    admin_page,
    connect,
    landed,
    message,
    press,
    row_status,
    sign_in,
    through_the_provider,
)

pytestmark = pytest.mark.browser


def test_admin_requests_more_scopes(page, sites, connect):
    admin_site, provider_site = sites
    connection = connect("crm", scopes="read", optional_scopes="write")
    shot = Shots(page, "scopes-admin-")
    sign_in(page, admin_site, "admin", "admin-pw", admin_page(connection))
    press(page, "button[name='_authorize']")
    through_the_provider(page, provider_site)
    page.goto(admin_site + admin_page(connection))
    assert (
        page.get_attribute("#oauthconn-more-scopes input[name='scope']", "placeholder") == "write"
    )
    shot("offered")

    page.fill("#oauthconn-more-scopes input[name='scope']", "write")
    press(page, "button[name='_request_scopes']")
    assert "crm is connected" in landed(page, provider_site).lower()  # consent pre-approved

    assert page.url == admin_site + admin_page(connection)
    assert connection.tokens.get().scope == "read write"
    assert "Granted scopes\nread write" in page.locator("#oauthconn-status dl").inner_text()
    shot("upgraded")

    page.fill("#oauthconn-more-scopes input[name='scope']", "admin")  # not allowed: refused
    press(page, "button[name='_request_scopes']")
    assert "Crm does not allow requesting admin" in message(page)
    assert connection.tokens.get().scope == "read write"


def test_user_adds_a_scope_from_their_connections_page(page, sites, connect):
    site, provider_site = sites
    connect("drive", per_user=True, scopes="read", optional_scopes="write")
    sign_in(page, site, "alice", "alice-pw", "/oauthconn/")
    press(page, "#connection-drive button[name='connect']")
    through_the_provider(page, provider_site)
    page.goto(f"{site}/oauthconn/")

    page.check("#connection-drive input[name='scope'][value='write']")
    press(page, "#connection-drive button[name='request_scopes']")
    assert "drive is connected" in landed(page, provider_site).lower()

    page.goto(f"{site}/oauthconn/")
    assert row_status(page, "drive").startswith("Connected")
    assert page.locator("#connection-drive input[name='scope']").count() == 0  # all granted
    Shots(page, "scopes-mine-")("upgraded")


def test_the_page_site_code_sends_a_person_to(page, sites, connect, django_user_model):
    site, provider_site = sites
    connect("docs", per_user=True, scopes="read", optional_scopes="write")
    alice = django_user_model.objects.get(username="alice")
    sign_in(page, site, "alice", "alice-pw", "/oauthconn/")
    press(page, "#connection-docs button[name='connect']")
    through_the_provider(page, provider_site)
    with pytest.raises(ScopesRequired) as raised:
        get_connection("docs", owner=alice).require_scopes(["write"], next="/oauthconn/")

    page.goto(site + raised.value.authorize_url)
    assert "write" in page.locator("#oauthconn-scopes-question").inner_text()
    Shots(page, "scopes-question-")("asked")
    press(page, "button[name='_request_scopes']")
    assert "docs is connected" in landed(page, provider_site).lower()

    assert page.url == f"{site}/oauthconn/"
    get_connection("docs", owner=alice).require_scopes(["write"])  # held now

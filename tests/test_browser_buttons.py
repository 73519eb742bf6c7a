"""Every button oauthconn renders, pressed in Debian's Chromium (issue 10, defects 1 and 8).

Django's test client sends no ``Origin`` header, so a page whose referrer policy makes the
browser send ``Origin: null`` with its forms (``no-referrer``) passes every test-client test
and fails in every real browser with "CSRF verification failed". Only a browser sees it: each
test here presses the buttons and checks the page it ends on says what the button did.

Sites as in tests/test_browser.py: this site at http://127.0.0.1:<port>, the provider
(django-oauth-toolkit) at http://localhost:<port>, so the two logins are separate cookies.
"""

# ruff: noqa: F811  (the fixtures imported from tests/test_browser.py are named as arguments)
from __future__ import annotations

import pytest
from django.urls import reverse

from oauthconn.flows.keys import rotate_key
from oauthconn.models import (
    ClientAuthMethod,
    Connection,
    GrantType,
    Provider,
    Token,
    TokenStatus,
)
from tests.test_browser import Shots, page, sign_in, sites  # noqa: F401  (fixtures shared)

pytestmark = pytest.mark.browser

BADGE = "#oauthconn-status .oauthconn-badge"


@pytest.fixture
def connect(sites, make_connection):
    """``make_connection`` after ``sites``: the redirect URI registered at the provider must
    point at the browser's origin for this site."""

    def make(slug: str, **fields) -> Connection:
        return make_connection(slug, test_path="me/", **fields)

    return make


def through_the_provider(
    page, provider_site: str, username: str = "alice", password: str = "alice-pw"
) -> str:
    """Log in at the provider (consent is pre-approved), follow the redirects back through
    the callback, and return the text of the page the flow lands on."""
    page.wait_for_url(f"{provider_site}/accounts/login/**")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    return landed(page, provider_site)


def landed(page, provider_site: str) -> str:
    # Where the callback lands may change (a result page); wherever it is, it is ours.
    page.wait_for_url(lambda url: not url.startswith(provider_site) and "/callback/" not in url)
    text = page.locator("body").inner_text()
    assert "CSRF" not in text and "Forbidden" not in text, text
    return text


def press(page, selector: str) -> None:
    """Press a button (or follow a link) and wait for the page it leads to, which must not
    be an error (a CSRF refusal fails here, with the refusal's text)."""
    with page.expect_navigation() as navigation:
        page.click(selector)
    response = navigation.value
    assert response is not None and response.status < 400, page.locator("body").inner_text()


def admin_page(connection: Connection) -> str:
    return reverse("admin:oauthconn_connection_change", args=[connection.pk])


def message(page, selector: str = ".messagelist") -> str:
    return page.locator(selector).inner_text()


def test_admin_connection_page_authorize_refresh_test_disconnect(page, sites, connect):
    admin_site, provider_site = sites
    connection = connect("crm")
    shot = Shots(page, "buttons-admin-")
    sign_in(page, admin_site, "admin", "admin-pw", admin_page(connection))
    assert page.locator(BADGE).inner_text() == "Not connected"

    press(page, "button[name='_authorize']")
    assert "crm is connected" in through_the_provider(page, provider_site).lower()
    page.goto(admin_site + admin_page(connection))
    assert page.locator(BADGE).inner_text() == "Connected"
    shot("authorized")
    first = connection.tokens.get().access_token.reveal()

    press(page, "button[name='_refresh']")
    page.wait_for_url(admin_site + admin_page(connection))
    assert "a new access token, valid until" in message(page)
    assert connection.tokens.get().access_token.reveal() != first
    shot("refreshed")

    press(page, "button[name='_test']")
    assert "HTTP 200" in page.locator("#oauthconn-test-result").inner_text()
    assert '"username": "alice"' in page.locator(".oauthconn-body").inner_text()
    shot("tested")

    press(page, "#oauthconn-test-result a.button")  # "Back to Crm"
    press(page, "button[name='_disconnect']")
    assert "Disconnect" in page.locator(".breadcrumbs").inner_text()
    shot("disconnect-confirm")
    press(page, "input[name='_confirm']")
    page.wait_for_url(admin_site + admin_page(connection))
    assert page.locator(BADGE).inner_text() == "Revoked"
    assert "revoked at the provider" in message(page)
    shot("disconnected")
    assert connection.tokens.get().status == TokenStatus.REVOKED


def test_admin_fetch_token_for_client_credentials(page, sites, connect):
    admin_site, _ = sites
    connection = connect("service", grant_type=GrantType.CLIENT_CREDENTIALS)
    sign_in(page, admin_site, "admin", "admin-pw", admin_page(connection))

    press(page, "button[name='_authorize']")  # labelled "Fetch token" for this grant
    page.wait_for_url(admin_site + admin_page(connection))
    assert "a new access token was obtained" in message(page)
    assert page.locator(BADGE).inner_text() == "Connected"
    Shots(page, "buttons-service-")("fetched")


def test_admin_rotate_key_of_a_private_key_jwt_connection(page, sites, connect):
    admin_site, _ = sites
    connection = connect("signed", auth_method=ClientAuthMethod.PRIVATE_KEY_JWT)
    old_kid = rotate_key(connection, "RSA")
    sign_in(page, admin_site, "admin", "admin-pw", admin_page(connection))
    assert page.locator("#oauthconn-key-id").inner_text() == old_kid

    page.select_option("#oauthconn-key-kind", "EC")
    press(page, "button[name='_rotate_key']")
    page.wait_for_url(admin_site + admin_page(connection))
    connection.refresh_from_db()
    assert connection.private_key_id != old_kid
    assert f"new EC key {connection.private_key_id} signs from now on" in message(page)
    assert page.locator("#oauthconn-key-id").inner_text() == connection.private_key_id
    Shots(page, "buttons-rotate-")("rotated")


def row_status(page, slug: str) -> str:
    return page.locator(f"#connection-{slug} .status").inner_text()


def test_your_connections_connect_reconnect_disconnect(page, sites, connect):
    site, provider_site = sites
    connect("drive", per_user=True)
    shot = Shots(page, "buttons-mine-")
    sign_in(page, site, "alice", "alice-pw", "/oauthconn/")
    assert row_status(page, "drive") == "Not connected"
    shot("not-connected")

    press(page, "#connection-drive button[name='connect']")
    assert "drive is connected" in through_the_provider(page, provider_site).lower()
    page.goto(f"{site}/oauthconn/")
    assert row_status(page, "drive").startswith("Connected")
    shot("connected")

    press(page, "#connection-drive button[name='connect']")  # now labelled "Reconnect"
    assert "drive is connected" in landed(page, provider_site).lower()  # no second login

    page.goto(f"{site}/oauthconn/")
    press(page, "#connection-drive button[name='disconnect']")
    page.wait_for_url(f"{site}/oauthconn/")
    assert row_status(page, "drive") == "Not connected"
    assert "Drive:" in message(page, ".messages")
    shot("disconnected")


def test_readme_snippet_on_the_demo_home_page(page, sites, connect):
    site, provider_site = sites
    connect("demo-personal", per_user=True)
    sign_in(page, site, "alice", "alice-pw", "/")
    Shots(page, "buttons-home-")("home")

    press(page, "text=Connect your account")
    assert "demo-personal is connected" in through_the_provider(page, provider_site).lower()
    page.goto(f"{site}/oauthconn/")
    assert row_status(page, "demo-personal").startswith("Connected")


def test_provider_change_page_saves_unchanged(page, sites, connect):
    """Defect 8: the default scope separator (one space) survives an unchanged save."""
    admin_site, _ = sites
    provider = connect("crm").provider
    change = reverse("admin:oauthconn_provider_change", args=[provider.pk])
    sign_in(page, admin_site, "admin", "admin-pw", change)

    press(page, "input[name='_save']")
    page.wait_for_url(admin_site + reverse("admin:oauthconn_provider_changelist"))
    assert "was changed successfully" in message(page)
    assert Provider.objects.get(pk=provider.pk).scope_separator == " "


def delete_ticked(page, changelist_url: str) -> str:
    """Run the change list's "delete selected" action on the ticked rows, confirm it, and
    return the message the change list shows afterwards."""
    page.select_option("select[name='action']", "delete_selected")
    press(page, "button[name='index']")
    press(page, "input[type=submit]")  # "Yes, I'm sure"
    page.wait_for_url(changelist_url)
    return message(page)


def test_change_list_action_form_deletes_the_ticked_rows(page, sites, connect):
    """The change list's action form: its row checkboxes (written by BoundedListAdmin, not
    Django's widget) work with admin's actions.js, and the action posts from a browser."""
    admin_site, _ = sites
    keep, drop = connect("crm"), connect("erp")
    changelist = reverse("admin:oauthconn_connection_changelist")
    sign_in(page, admin_site, "admin", "admin-pw", changelist)

    page.check("#action-toggle")
    assert page.locator(".action-counter").inner_text() == "2 of 2 selected"
    page.uncheck(f"input.action-select[value='{keep.pk}']")
    assert page.locator(".action-counter").inner_text() == "1 of 2 selected"
    assert "Successfully deleted 1 connection" in delete_ticked(page, admin_site + changelist)
    assert list(Connection.objects.values_list("slug", flat=True)) == [keep.slug]
    assert drop.slug not in page.locator("#result_list").inner_text()


def test_token_list_action_form_deletes_the_ticked_grant(page, sites, connect):
    """The token list, which leaves the secrets in the database (TokenAdmin.list_queryset),
    still deletes the ticked grant from a browser."""
    admin_site, _ = sites
    keep, drop = (
        Token.objects.create(connection=connect(slug), access_token=f"{slug}-access-token")
        for slug in ("crm", "erp")
    )
    changelist = reverse("admin:oauthconn_token_changelist")
    sign_in(page, admin_site, "admin", "admin-pw", changelist)
    assert page.locator("#result_list tbody tr").count() == 2
    assert "-access-token" not in page.content()

    page.check(f"input.action-select[value='{drop.pk}']")
    assert "Successfully deleted 1 token" in delete_ticked(page, admin_site + changelist)
    assert list(Token.objects.values_list("pk", flat=True)) == [keep.pk]


def test_admin_switches_a_connected_shared_connection_to_per_user(page, sites, connect):
    """The change form in a real browser: ticking "per user" and saving revokes the shared
    grant at the provider and removes it, and the message says so."""
    admin_site, provider_site = sites
    connection = connect("crm")
    sign_in(page, admin_site, "admin", "admin-pw", admin_page(connection))
    press(page, "button[name='_authorize']")
    through_the_provider(page, provider_site)
    assert connection.tokens.get().is_connected

    page.goto(admin_site + admin_page(connection))
    page.check("#id_per_user")
    press(page, "input[name='_continue']")

    assert "1 grant of its old kind revoked at the provider and removed" in (message(page))
    Shots(page, "buttons-switch-")("switched")
    connection.refresh_from_db()
    assert connection.per_user and not connection.tokens.exists()

"""The README's "Five-minute tour", walked in Debian's Chromium as a new user would (issue 15,
part 6): the demo seeded by ``demo_setup``, the wizard, the provider's login and consent, the
connection page's buttons, a demo restart in the middle, site code, a refused grant, a denied
consent (the result pages) and a user's own connection. Screenshots of every page go to
test-artifacts/browser/tour-*.png.

Sites as in tests/test_browser.py: this site at http://127.0.0.1:<port>, the demo provider
(django-oauth-toolkit) at http://localhost:<port>, so the two logins are separate cookies.
"""

# ruff: noqa: F811  (the fixtures imported from tests/test_browser.py are named as arguments)
from __future__ import annotations

import io
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import RefreshToken

from oauthconn import get_connection
from oauthconn.models import Connection
from project.devkeys import development_credentials
from project.management.commands.demo_setup import WIZARD_CLIENT
from tests.test_browser import Shots, page  # noqa: F401  (the Chromium page fixture)
from tests.test_browser_buttons import press

pytestmark = pytest.mark.browser

BADGE = "#oauthconn-status .oauthconn-badge"
EVENTS = ".oauthconn-events"


@pytest.fixture
def demo(live_server, settings, tmp_path, transactional_db):
    """The demo as ``./scripts/demo`` sets it up, on the live server's port; returns the
    site, the provider and a function that runs ``demo_setup`` again (a restart)."""
    port = urlsplit(live_server.url).port
    site, provider = f"http://127.0.0.1:{port}", f"http://localhost:{port}"
    settings.DEMO_LOCAL_DIR = tmp_path  # the demo's kept passwords, away from the repo's
    settings.OAUTHCONN = {
        **settings.OAUTHCONN,
        "REDIRECT_BASE_URL": site,
        "PRESET_PARAMETERS": {"demo": {"base": provider}},  # as scripts/demo exports it
    }

    def setup() -> dict[str, str]:
        call_command("demo_setup", site_url=site, provider_url=provider, stdout=io.StringIO())
        names = ["admin", "alice", WIZARD_CLIENT]
        return development_credentials(tmp_path, names)

    return site, provider, setup


def sign_in(page, site: str, login: str, username: str, password: str, next_path: str) -> None:
    page.goto(f"{site}{login}?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    press(page, "input[type=submit]")


def at_provider_as_alice(page, provider: str, password: str) -> None:
    """The provider's login (when its session has none), then its consent page."""
    page.wait_for_url(lambda url: url.startswith(provider))
    if "/accounts/login/" in page.url:
        page.fill("#id_username", "alice")
        page.fill("#id_password", password)
        page.click("input[type=submit]")
    page.wait_for_url(f"{provider}/demo-oauth/authorize/**")


def visible_help(page, row: str) -> list[str]:
    lines = page.locator(f"{row} [data-auth-help]")
    return [lines.nth(i).inner_text() for i in range(lines.count()) if lines.nth(i).is_visible()]


def change_page(connection: Connection) -> str:
    return reverse("admin:oauthconn_connection_change", args=[connection.pk])


def dd_after(page, term: str) -> str:
    """The text of the <dd> that follows the status panel's <dt>``term``</dt>."""
    return page.locator(f"#oauthconn-status dt:text-is('{term}') + dd").inner_text()


def fits(page, selector: str) -> bool:
    """True when nothing inside ``selector`` overflows it sideways."""
    return page.eval_on_selector(selector, "el => el.scrollWidth <= el.clientWidth")


def test_readme_tour(page, demo):
    site, provider, setup = demo
    secret = setup()
    shot = Shots(page, "tour-")

    # 1. Sign in to the admin: the connection list fits 1280 px, badges whole.
    sign_in(page, site, "/admin/login/", "admin", secret["admin"], "/admin/oauthconn/connection/")
    assert page.viewport_size["width"] == 1280
    shot("change-list")
    check_change_list(page)

    # The wizard, step 1: the demo preset's parameter is its base URL, prefilled.
    press(page, ".object-tools a.addlink")  # "Add connection"
    notice = page.locator("#oauthconn-dev-notice")
    assert "Development setting" in notice.inner_text()
    assert page.locator(".errornote").count() == 0  # a notice, not an error
    page.fill("#id_basics-name", "My API")
    page.check("input[name='basics-source'][value='preset']")
    page.select_option("#id_basics-preset", "demo")
    assert page.locator("label[for='id_basics-preset_parameter']").inner_text() == "Base URL:"
    assert "base URL" in page.locator(".field-preset_parameter .help").inner_text()
    assert page.input_value("#id_basics-preset_parameter") == provider
    shot("wizard-basics")
    press(page, "input[name='_next']")

    page.check("input[name='grant-grant_type'][value='authorization_code_pkce']")
    shot("wizard-grant")
    press(page, "input[name='_next']")

    # Step 3: the client authentication's help follows the selected method.
    page.fill("#id_client-client_id", WIZARD_CLIENT)
    page.fill("#id_client-client_secret", secret[WIZARD_CLIENT])
    row = ".field-client_auth_method"
    assert page.input_value("#id_client-client_auth_method") == "client_secret_basic"
    assert visible_help(page, row) == [help_line(page, row, "client_secret_basic")]
    assert "HTTP Basic" in visible_help(page, row)[0]
    page.select_option("#id_client-client_auth_method", "client_secret_post")
    assert visible_help(page, row) == [help_line(page, row, "client_secret_post")]
    page.select_option("#id_client-client_auth_method", "client_secret_basic")
    assert not any("Signed JWT" in line for line in visible_help(page, row))
    shot("wizard-client")
    press(page, "input[name='_next']")
    shot("wizard-review")
    press(page, "input[value='Save and authorize']")

    at_provider_as_alice(page, provider, secret["alice"])
    shot("provider-consent")
    press(page, "input[name='allow']")
    my_api = Connection.objects.get(slug="my-api")
    page.wait_for_url(site + change_page(my_api))
    assert page.locator(BADGE).inner_text() == "Connected"
    shot("connected")

    # Refresh now: the message and the page give the expiry in one format; the event names
    # who refreshed.
    press(page, "button[name='_refresh']")
    expires = dd_after(page, "Access token expires")
    assert f"valid until {expires}." in page.locator(".messagelist").inner_text()
    assert dd_after(page, "Last refresh") != "—"
    assert "Refreshed · by admin" in page.locator(EVENTS).inner_text()
    shot("refreshed")

    # A demo restart (scripts/demo runs demo_setup on every start): the wizard-made
    # connection keeps working: refresh and test succeed.
    assert setup() == secret
    press(page, "button[name='_refresh']")
    assert "a new access token, valid until" in page.locator(".messagelist").inner_text()
    press(page, "button[name='_test']")
    assert "HTTP 200" in page.locator("#oauthconn-test-result").inner_text()
    assert '"username": "alice"' in page.locator(".oauthconn-body").inner_text()
    assert "OAuth connections" in page.locator(".breadcrumbs").inner_text()
    shot("test-after-restart")

    # 2. Site code, and the refreshes nobody pressed a button for.
    assert get_connection("my-api").get("me/").json() == {"username": "alice"}
    make_due(my_api)
    get_connection("my-api").access_token  # renewed on use: "automatic"
    make_due(my_api)
    call_command("oauthconn_refresh", stdout=io.StringIO())
    page.goto(site + change_page(my_api))
    events = page.locator(EVENTS).inner_text()
    assert "Refreshed · by oauthconn_refresh" in events
    assert "Refreshed · by automatic" in events
    shot("events")

    # The provider drops the grant: needs reauthorization, and only Reauthorize is offered.
    RefreshToken.objects.all().delete()
    press(page, "button[name='_refresh']")
    assert page.locator(BADGE).inner_text() == "Needs reauthorization"
    assert page.locator("button[name='_refresh']").count() == 0
    assert page.locator("button[name='_authorize']").inner_text() == "Reauthorize"
    shot("needs-reauth")

    # Reauthorize, then deny consent: the admin's result page leads back to this page.
    press(page, "button[name='_authorize']")
    at_provider_as_alice(page, provider, secret["alice"])
    page.click("input[value='Cancel']")  # the result page answers 400: not press()
    page.wait_for_url(f"{site}/oauthconn/result/**")
    assert page.locator("#site-name").count() == 1  # the admin's header: the admin's look
    assert "OAuth connections" in page.locator(".breadcrumbs").inner_text()
    back = page.locator("#oauthconn-back")
    assert back.get_attribute("href") == change_page(my_api)
    assert back.inner_text() == "Back to My API"
    shot("callback-failed-admin")
    press(page, "#oauthconn-back")
    press(page, "button[name='_authorize']")
    at_provider_as_alice(page, provider, secret["alice"])
    press(page, "input[name='allow']")
    page.wait_for_url(site + change_page(my_api))
    assert page.locator(BADGE).inner_text() == "Connected"

    # Disconnect: its page's breadcrumbs pass through the app.
    press(page, "button[name='_disconnect']")
    crumbs = page.locator(".breadcrumbs").inner_text()
    assert "OAuth connections › Connections › My API › Disconnect" in crumbs
    shot("disconnect-confirm")
    press(page, "input[name='_confirm']")
    assert page.locator(BADGE).inner_text() == "Revoked"
    check_change_list(page, goto=site + "/admin/oauthconn/connection/")
    shot("change-list-after")

    # 3. Per-user: alice connects her own account from the home page and denies consent;
    # the result page is the site's, and leads back to her connections.
    page.context.clear_cookies()
    sign_in(page, site, "/accounts/login/", "alice", secret["alice"], "/")
    press(page, "text=Connect your account")
    at_provider_as_alice(page, provider, secret["alice"])
    page.click("input[value='Cancel']")  # the result page answers 400: not press()
    page.wait_for_url(f"{site}/oauthconn/result/**")
    assert page.locator("#site-name").count() == 0  # the site's base template, not the admin
    assert "access_denied" in page.locator("#oauthconn-error").inner_text()
    assert page.locator("#oauthconn-back").get_attribute("href") == "/oauthconn/"
    assert page.locator("#oauthconn-back").inner_text() == "Back to your connections"
    shot("callback-failed-user")
    press(page, "#oauthconn-back")
    assert "Not connected" in page.locator("#connection-demo-personal .status").inner_text()
    shot("your-connections")


def help_line(page, row: str, method: str) -> str:
    return page.locator(f"{row} [data-auth-help='{method}']").inner_text()


def make_due(connection: Connection) -> None:
    """Let the shared token be about to expire, as an hour later would."""
    token = connection.tokens.get(owner__isnull=True)
    token.expires_at = timezone.now() + timedelta(seconds=5)
    token.save(update_fields=["expires_at"])


def check_change_list(page, goto: str = "") -> None:
    """The change list at 1280 px: no sideways scrolling, no badge cut off."""
    if goto:
        page.goto(goto)
    widths = page.eval_on_selector_all(
        "#result_list thead th", "ths => ths.map(th => th.className + ':' + th.offsetWidth)"
    )
    assert fits(page, "#changelist .results"), f"the change list scrolls sideways: {widths}"
    badges = page.locator("#result_list .oauthconn-badge")
    assert badges.count() >= 3
    for i in range(badges.count()):
        clipped = badges.nth(i).evaluate(
            "el => el.scrollWidth > el.clientWidth"
            " || el.getBoundingClientRect().right > el.closest('td').getBoundingClientRect().right"
            " || el.getBoundingClientRect().right"
            " > document.querySelector('#changelist .results').getBoundingClientRect().right"
        )
        assert not clipped, badges.nth(i).inner_text()
    assert page.locator("#result_list").inner_text().count("Not connected") >= 1

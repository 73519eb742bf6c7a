"""The admin as an admin meets it, in Debian's Chromium driven by Playwright: the wizard, the
provider's login and consent pages (django-oauth-toolkit over real HTTP), the connection page,
Test and Disconnect. Screenshots of every step go to test-artifacts/browser/.

The admin runs at http://127.0.0.1:<port> and the provider at http://localhost:<port> (the
same live server), so the admin's session and the provider's login are separate cookies, as
with a real provider.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.db import connections
from oauth2_provider.models import Application

from oauthconn.models import Connection, Event, EventKind, TokenStatus

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SECRET = "browser-s3cret-Vx7"


@pytest.fixture
def page(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls of a browser
    # test are plain synchronous test code. Only for these tests: set for the whole session,
    # it would hide a real SynchronousOnlyOperation in every async test after them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        yield context.new_page()
        context.close()
        browser.close()
        # While Playwright's loop runs, Django keeps the test's database connections in
        # per-context storage, not the thread's: close them here, inside the block. Left to
        # the garbage collector, a SQLite connection is freed later from a live server thread
        # (a segfault in the next browser test), and PostgreSQL cannot drop the test database.
        connections.close_all()
    connections.close_all()


class Shots:
    """Numbered full-page screenshots; ``prefix`` keeps one test's files apart from another's."""

    def __init__(self, page, prefix: str = "") -> None:
        self.page, self.prefix, self.n = page, prefix, 0

    def __call__(self, name: str) -> None:
        self.n += 1
        path = ARTIFACTS / f"{self.prefix}{self.n:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)


@pytest.fixture
def sites(live_server, settings, django_user_model):
    port = urlsplit(live_server.url).port
    admin_site, provider_site = f"http://127.0.0.1:{port}", f"http://localhost:{port}"
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REDIRECT_BASE_URL": admin_site}
    django_user_model.objects.create_superuser("admin", "admin@example.com", "admin-pw")
    django_user_model.objects.create_user("alice", "alice@example.com", "alice-pw")
    Application.objects.create(
        name="Browser test client",
        client_id="browser-client",
        client_secret=SECRET,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=f"{admin_site}/oauthconn/callback/demo-browser/",
        skip_authorization=False,  # the consent page must be shown and accepted
        algorithm="",
    )
    return admin_site, provider_site


def sign_in(page, site: str, username: str, password: str, next_path: str) -> None:
    """Log in with the admin's (or the provider's, same template) login form."""
    login = "/admin/login/" if username == "admin" else "/accounts/login/"
    page.goto(f"{site}{login}?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{site}{next_path}")


def wizard_from_issuer(page, site: str, name: str, issuer: str, grant_type: str) -> None:
    """The wizard's first two steps for a provider discovered from its issuer."""
    page.goto(f"{site}/admin/oauthconn/connection/add/")
    page.fill("#id_basics-name", name)
    page.check("input[name='basics-source'][value='issuer']")
    page.fill("#id_basics-issuer", issuer)
    page.click("input[name='_next']")
    page.check(f"input[name='grant-grant_type'][value='{grant_type}']")
    page.click("input[name='_next']")


def test_wizard_authorize_test_disconnect(page, sites, as_log):
    admin_site, provider_site = sites
    shot = Shots(page)

    page.goto(f"{admin_site}/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "admin-pw")
    shot("admin-login")
    page.click("input[type=submit]")
    page.wait_for_url(f"{admin_site}/admin/")

    # Step 1: basics, with the demo preset pointed at the provider's origin.
    page.goto(f"{admin_site}/admin/oauthconn/connection/add/")
    page.fill("#id_basics-name", "Demo browser")
    assert page.input_value("#id_basics-slug") == "demo-browser"  # derived while typing
    page.check("input[name='basics-source'][value='preset']")
    page.select_option("#id_basics-preset", "demo")
    page.fill("#id_basics-preset_parameter", provider_site)
    shot("wizard-basics")
    page.click("input[name='_next']")

    # Step 2: grant type. "Back" first: step 1 comes back as it was typed.
    page.click("button[name='wizard_goto_step']")
    assert page.input_value("#id_basics-name") == "Demo browser"
    assert page.input_value("#id_basics-preset_parameter") == provider_site
    page.click("input[name='_next']")
    page.check("input[name='grant-grant_type'][value='authorization_code_pkce']")
    shot("wizard-grant")
    page.click("input[name='_next']")

    # Step 3: client and endpoints (prefilled from the preset), redirect URI read-only.
    assert page.input_value("#id_client-token_endpoint") == f"{provider_site}/demo-oauth/token/"
    redirect_uri = page.input_value("#oauthconn-redirect-uri")
    assert redirect_uri == f"{admin_site}/oauthconn/callback/demo-browser/"
    page.fill("#id_client-client_id", "browser-client")
    page.fill("#id_client-client_secret", SECRET)
    shot("wizard-client")
    page.click("input[name='_next']")

    # Step 4: review; the secret shows only as "set".
    review = page.locator("#oauthconn-review")
    assert review.locator(".oauthconn-secret").inner_text() == "set"
    assert SECRET not in page.content()
    shot("wizard-review")
    page.click("input[value='Save and authorize']")

    # At the provider: log in (its own cookie), then consent.
    page.wait_for_url(f"{provider_site}/accounts/login/**")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "alice-pw")
    shot("provider-login")
    page.click("input[type=submit]")
    page.wait_for_url(f"{provider_site}/demo-oauth/authorize/**")
    shot("provider-consent")
    page.click("input[name='allow']")

    # Back on the connection page: connected.
    page.wait_for_url(f"{admin_site}/admin/oauthconn/connection/*/change/")
    badge = page.locator("#oauthconn-status .oauthconn-badge")
    assert badge.inner_text() == "Connected"
    assert "is connected" in page.locator(".messagelist").inner_text()
    shot("connected")
    connection = Connection.objects.get(slug="demo-browser")
    token = connection.tokens.get()
    assert token.status == TokenStatus.ACTIVE
    assert as_log.to("/demo-oauth/token/")[-1].form["code_verifier"]  # PKCE was used

    # Test: the demo API's "who am I" answer, escaped, with its status.
    page.click("button[name='_test']")
    result = page.locator("#oauthconn-test-result")
    assert "HTTP 200" in result.inner_text()
    assert '"username": "alice"' in page.locator(".oauthconn-body").inner_text()
    shot("test-result")
    page.go_back()

    # Disconnect: a confirmation page, then revoked at the provider and wiped here.
    page.reload()
    page.click("button[name='_disconnect']")
    assert "revoked at the provider" in page.locator("#content-main").inner_text()
    shot("disconnect-confirm")
    page.click("input[name='_confirm']")
    page.wait_for_url(f"{admin_site}/admin/oauthconn/connection/*/change/")
    assert page.locator("#oauthconn-status .oauthconn-badge").inner_text() == "Revoked"
    assert "revoked at the provider" in page.locator(".messagelist").inner_text()
    shot("disconnected")
    token.refresh_from_db()
    assert token.access_token is None and token.refresh_token is None
    assert as_log.to("/demo-oauth/revoke_token/")
    assert Event.objects.filter(connection=connection, kind=EventKind.REVOKED).exists()

    # The change list: the badge and no secret anywhere.
    page.goto(f"{admin_site}/admin/oauthconn/connection/")
    assert "Revoked" in page.locator("#result_list").inner_text()
    assert SECRET not in page.content()
    shot("change-list")

"""The newcomer's path: demo_setup, then a real authorization over HTTP with two browser
sessions (admin at 127.0.0.1, the provider's user alice at localhost), then site code."""

from __future__ import annotations

import io
import re

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from oauth2_provider.models import Application

from oauthconn import get_connection
from oauthconn.models import ClientAuthMethod, Connection, GrantType, Provider, Token

pytestmark = pytest.mark.django_db(transaction=True)


def csrf(response: httpx.Response) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.text).group(1)


def log_in(browser: httpx.Client, url: str, username: str, password: str) -> httpx.Response:
    form = browser.get(url)
    return browser.post(
        url,
        data={"username": username, "password": password, "csrfmiddlewaretoken": csrf(form)},
        headers={"Referer": url},
    )


@pytest.fixture(autouse=True)
def demo_local_dir(settings, tmp_path):
    """Keep the credentials demo_setup creates out of the developer's own ``.local/``."""
    settings.DEMO_LOCAL_DIR = tmp_path / "local"
    return settings.DEMO_LOCAL_DIR


@pytest.fixture
def origins(django_db_setup, live_server, settings) -> tuple[str, str]:
    """The site at 127.0.0.1 and the demo provider at localhost, as scripts/demo serves them.

    django_db_setup comes first so that, when this file runs alone, the session's live server
    starts after the file test database exists and does not share this thread's connection.
    """
    port = live_server.url.rsplit(":", 1)[1]
    site, provider = f"http://127.0.0.1:{port}", f"http://localhost:{port}"
    # The demo project has no teams: no OWNER_MODEL, as project/settings.py.
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REDIRECT_BASE_URL": site, "OWNER_MODEL": None}
    return site, provider


def demo_setup(site: str, provider: str) -> str:
    out = io.StringIO()
    call_command("demo_setup", site_url=site, provider_url=provider, stdout=out)
    return out.getvalue()


def printed(output: str, pattern: str) -> str:
    return re.search(pattern, output).group(1)


def authorize_over_http(site: str, provider: str, slug: str, output: str) -> httpx.Response:
    """Admin at the site starts the authorization, alice consents at the provider."""
    admin_pw = printed(output, r"user admin / (\S+)")
    alice_pw = printed(output, r"user alice / (\S+)")
    with httpx.Client() as browser:
        log_in(browser, f"{site}/admin/login/?next=/admin/", "admin", admin_pw)
        page = browser.get(f"{site}/admin/oauthconn/connection/")
        start = browser.post(
            f"{site}/oauthconn/connect/{slug}/",
            data={"csrfmiddlewaretoken": csrf(page)},
            headers={"Referer": f"{site}/admin/"},
        )
        authorize_url = start.headers["Location"]
        assert authorize_url.startswith(f"{provider}/demo-oauth/authorize/")
        login_url = provider + browser.get(authorize_url).headers["Location"]
        log_in(browser, login_url, "alice", alice_pw)
        consent = browser.get(authorize_url)
        form = dict(
            re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', consent.text)
        )
        back = browser.post(
            f"{provider}/demo-oauth/authorize/",
            data={**form, "allow": "Authorize"},
            headers={"Referer": authorize_url},
        )
        assert back.headers["Location"].startswith(f"{site}/oauthconn/callback/{slug}/")
        return browser.get(back.headers["Location"], follow_redirects=True)


def test_demo_setup_gives_a_working_connection_in_a_few_clicks(origins):
    site, provider = origins
    landed = authorize_over_http(site, provider, "demo", demo_setup(site, provider))

    assert landed.status_code == 200 and "Connected" in landed.text
    assert Token.objects.get(connection__slug="demo").authorized_by.username == "admin"
    assert get_connection("demo").get("me/").json() == {"username": "alice"}


def make_wizard_connection(output: str) -> Connection:
    """What the tour's wizard makes from the printed client id and secret."""
    preset_provider = Provider.objects.get(slug="demo")
    return Connection.objects.create(
        slug="my-api",
        name="My API",
        provider=preset_provider,
        grant_type=GrantType.AUTHORIZATION_CODE_PKCE,
        client_id=printed(output, r"client id (\S+),"),
        client_secret=printed(output, r"client secret (\S+)"),
        client_auth_method=ClientAuthMethod.CLIENT_SECRET_BASIC,
        scopes="read write",
        api_base_url=preset_provider.metadata["api_base_url"],
    )


def test_demo_setup_again_keeps_logins_clients_and_the_wizard_grant(origins):
    site, provider = origins
    first = demo_setup(site, provider)
    make_wizard_connection(first)
    authorize_over_http(site, provider, "my-api", first)
    stored_secrets = dict(Application.objects.values_list("client_id", "client_secret"))
    refresh_token = Token.objects.get(connection__slug="my-api").refresh_token.reveal()

    second = demo_setup(site, provider)

    assert second == first
    assert dict(Application.objects.values_list("client_id", "client_secret")) == stored_secrets
    renewed = get_connection("my-api").token(force_refresh=True)
    assert renewed.refresh_token.reveal() != refresh_token  # rotated: the refresh really ran
    assert get_connection("my-api").get("me/").json() == {"username": "alice"}
    assert authorize_over_http(site, provider, "demo", second).status_code == 200


def test_demo_setup_gives_back_a_changed_password(db, demo_local_dir):
    output = demo_setup("http://127.0.0.1:8000", "http://localhost:8000")
    alice = get_user_model().objects.get(username="alice")
    alice.set_password("something else")
    alice.save()

    assert demo_setup("http://127.0.0.1:8000", "http://localhost:8000") == output
    alice.refresh_from_db()
    assert alice.check_password(printed(output, r"user alice / (\S+)"))
    assert (demo_local_dir / "demo-credentials.json").stat().st_mode & 0o077 == 0


def test_demo_setup_registers_the_tour_wizard_client(db, settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REDIRECT_BASE_URL": "http://127.0.0.1:8000"}
    out = io.StringIO()
    call_command("demo_setup", stdout=out)
    client = Application.objects.get(client_id="oauthconn-wizard")
    assert client.redirect_uris == "http://127.0.0.1:8000/oauthconn/callback/my-api/"
    secret = re.search(r"client secret (\S+)", out.getvalue()).group(1)
    assert client.client_secret != secret  # stored hashed by the provider

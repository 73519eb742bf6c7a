"""The newcomer's path: demo_setup, then a real authorization over HTTP with two browser
sessions (admin at 127.0.0.1, the provider's user alice at localhost), then site code."""

from __future__ import annotations

import io
import re

import httpx
import pytest
from django.core.management import call_command

from oauthconn import get_connection
from oauthconn.models import Token

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


def test_demo_setup_gives_a_working_connection_in_a_few_clicks(live_server, settings):
    port = live_server.url.rsplit(":", 1)[1]
    site, provider = f"http://127.0.0.1:{port}", f"http://localhost:{port}"
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REDIRECT_BASE_URL": site}
    out = io.StringIO()
    call_command("demo_setup", site_url=site, provider_url=provider, stdout=out)
    admin_pw = re.search(r"user admin / (\S+)", out.getvalue()).group(1)
    alice_pw = re.search(r"user alice / (\S+)", out.getvalue()).group(1)

    with httpx.Client() as browser:
        log_in(browser, f"{site}/admin/login/?next=/admin/", "admin", admin_pw)
        page = browser.get(f"{site}/admin/oauthconn/connection/")
        start = browser.post(
            f"{site}/oauthconn/connect/demo/",
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
        assert back.headers["Location"].startswith(f"{site}/oauthconn/callback/demo/")
        landed = browser.get(back.headers["Location"], follow_redirects=True)

    assert landed.status_code == 200 and "Connected" in landed.text
    assert Token.objects.get(connection__slug="demo").authorized_by.username == "admin"
    assert get_connection("demo").get("me/").json() == {"username": "alice"}


def test_demo_setup_registers_the_tour_wizard_client(db, settings):
    from oauth2_provider.models import Application

    settings.OAUTHCONN = {**settings.OAUTHCONN, "REDIRECT_BASE_URL": "http://127.0.0.1:8000"}
    out = io.StringIO()
    call_command("demo_setup", stdout=out)
    client = Application.objects.get(client_id="oauthconn-wizard")
    assert client.redirect_uris == "http://127.0.0.1:8000/oauthconn/callback/my-api/"
    secret = re.search(r"client secret (\S+)", out.getvalue()).group(1)
    assert client.client_secret != secret  # stored hashed by the provider

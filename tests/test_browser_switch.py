"""Both buttons of "Use another account?" pressed in Debian's Chromium (defect 7b).

The confirmation page holds a POST form; only a browser shows whether its referrer policy
lets the form through Django's CSRF check. Sites as in tests/test_browser.py: this site at
127.0.0.1, the provider (django-oauth-toolkit with OIDC) at localhost, so signing out at the
provider (its cookies) and in as another account leaves the admin's session alone.
"""

# ruff: noqa: F811  (imported fixtures are named as arguments)
from __future__ import annotations

import pytest
from oauth2_provider.models import Application

from oauthconn.models import Connection, Token
from tests.test_browser import Shots, page, sites  # noqa: F401  (fixtures shared with it)
from tests.test_browser_buttons import (
    BADGE,
    admin_page,
    landed,
    message,
    press,
    sign_in,
    through_the_provider,
)
from tests.test_oidc_live import issuer, oidc_provider  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", "bob-pw")


@pytest.fixture
def connect_oidc(sites, make_connection, oidc_provider):
    def make(slug: str, **fields) -> Connection:
        connection = make_connection(slug, provider_=oidc_provider, scopes="openid read", **fields)
        Application.objects.filter(client_id=connection.client_id).update(
            algorithm=Application.RS256_ALGORITHM
        )
        return connection

    return make


def sign_out_at_the_provider(page) -> None:
    page.context.clear_cookies(domain="localhost")


def test_admin_keeps_then_uses_another_account(page, sites, connect_oidc, django_user_model, bob):
    admin_site, provider_site = sites
    alice = django_user_model.objects.get(username="alice")
    connection = connect_oidc("crm")
    shot = Shots(page, "switch-admin-")
    sign_in(page, admin_site, "admin", "admin-pw", admin_page(connection))
    press(page, "button[name='_authorize']")
    through_the_provider(page, provider_site, "alice", "alice-pw")
    first = Token.objects.get(connection=connection)
    assert first.subject == str(alice.pk)

    sign_out_at_the_provider(page)
    press(page, "button[name='_authorize']")
    text = through_the_provider(page, provider_site, "bob", "bob-pw")
    assert "Use another account for Crm?" in text
    assert page.locator("#oauthconn-old-subject").inner_text() == str(alice.pk)
    assert page.locator("#oauthconn-new-subject").inner_text() == str(bob.pk)
    shot("asked")
    press(page, "input[name='keep_old']")
    page.wait_for_url(admin_site + admin_page(connection))
    assert "Crm keeps subject" in message(page)
    assert page.locator(BADGE).inner_text() == "Connected"
    assert Token.objects.get(pk=first.pk).access_token == first.access_token
    shot("kept")

    press(page, "button[name='_authorize']")  # still bob at the provider: no login
    landed(page, provider_site)
    press(page, "input[name='use_new']")
    page.wait_for_url(admin_site + admin_page(connection))
    assert f"Crm now uses subject {bob.pk}" in message(page)
    assert Token.objects.get(pk=first.pk).subject == str(bob.pk)
    shot("switched")


def test_user_page_keeps_then_uses_another_account(page, sites, connect_oidc, bob):
    site, provider_site = sites
    connection = connect_oidc("drive", per_user=True)
    sign_in(page, site, "alice", "alice-pw", "/oauthconn/")
    press(page, "#connection-drive button[name='connect']")
    assert (
        "drive is connected"
        in through_the_provider(page, provider_site, "alice", "alice-pw").lower()
    )

    for button, subject_after in (("keep_old", "alice"), ("use_new", "bob")):
        sign_out_at_the_provider(page)
        page.goto(f"{site}/oauthconn/")
        press(page, "#connection-drive button[name='connect']")
        assert "Use another account" in through_the_provider(page, provider_site, "bob", "bob-pw")
        Shots(page, f"switch-mine-{button}-")("asked")
        press(page, f"button[name='{button}']")
        page.wait_for_url(f"{site}/oauthconn/")
        token = Token.objects.get(connection=connection)
        assert token.owner.username == "alice"
        assert token.subject == str(token.owner.pk if subject_after == "alice" else bob.pk)

"""The retry settings on the admin's connection page, saved in Debian's Chromium
(docs/calls.md): the page's form must post from a real browser, CSRF and all."""

# ruff: noqa: F811  (the fixtures imported from tests/test_browser.py are named as arguments)
from __future__ import annotations

import pytest

from oauthconn.models import Connection
from tests.test_browser import page, sites  # noqa: F401  (fixtures shared with it)
from tests.test_browser_buttons import admin_page, message, press, sign_in

pytestmark = pytest.mark.browser


def test_admin_saves_the_retry_settings(page, sites, make_connection):
    admin_site, _ = sites
    connection = make_connection("crm")
    sign_in(page, admin_site, "admin", "admin-pw", admin_page(connection))

    page.check("#id_retry_rate_limited")
    page.fill("#id_max_attempts", "4")
    page.fill("#id_max_retry_wait", "10")
    page.fill("#id_refresh_on_status", "403, 400")
    press(page, "input[name='_save']")

    assert "was changed successfully" in message(page)
    saved = Connection.objects.get(pk=connection.pk)
    assert saved.retry_rate_limited and saved.refresh_on_status == [403, 400]
    assert (saved.max_attempts, saved.max_retry_wait) == (4, 10)

    page.goto(admin_site + admin_page(connection))
    page.fill("#id_refresh_on_status", "401")
    press(page, "input[name='_save']")
    assert "401 always refreshes" in page.locator(".field-refresh_on_status").inner_text()
    assert Connection.objects.get(pk=connection.pk).refresh_on_status == [403, 400]

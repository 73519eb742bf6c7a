"""The team rows of "Your connections" pressed in Debian's Chromium: Connect, Reconnect and
Disconnect post the team they act for, and pass the CSRF check a real browser sends.

Sites as in tests/test_browser.py (this site at 127.0.0.1, the provider at localhost).
"""

# ruff: noqa: F811  (the fixtures imported from other test modules are named as arguments)
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from oauthconn import get_connection
from oauthconn.exceptions import NotConnected
from oauthconn.models import Token
from tests.teams.models import Team
from tests.test_browser import Shots, page, sites  # noqa: F401  (fixtures shared with it)
from tests.test_browser_buttons import (  # noqa: F401  (connect is a fixture)
    connect,
    landed,
    message,
    press,
    sign_in,
    through_the_provider,
)

pytestmark = pytest.mark.browser


def test_team_rows_connect_reconnect_disconnect(page, sites, connect):
    site, provider_site = sites
    alice = get_user_model().objects.get(username="alice")
    ours = Team.objects.create(name="Apricot")
    ours.members.add(alice)
    theirs = Team.objects.create(name="Blueberry")  # alice is no member: never shown
    connect("drive", per_owner=True)
    row = f"#connection-drive-owner-{ours.pk}"
    shot = Shots(page, "buttons-team-")

    sign_in(page, site, "alice", "alice-pw", "/oauthconn/")
    assert page.locator(f"#owner-{ours.pk}").inner_text() == "Apricot"
    assert "Blueberry" not in page.locator("body").inner_text()
    assert page.locator(f"{row} .status").inner_text() == "Not connected"
    shot("not-connected")

    press(page, f"{row} button[name='connect']")
    assert "drive is connected" in through_the_provider(page, provider_site).lower()
    page.goto(f"{site}/oauthconn/")
    assert page.locator(f"{row} .status").inner_text().startswith("Connected")
    assert get_connection("drive", owner=ours).access_token
    shot("connected")

    press(page, f"{row} button[name='connect']")  # now labelled "Reconnect"
    assert "drive is connected" in landed(page, provider_site).lower()

    page.goto(f"{site}/oauthconn/")
    press(page, f"{row} button[name='disconnect']")
    page.wait_for_url(f"{site}/oauthconn/")
    assert page.locator(f"{row} .status").inner_text() == "Not connected"
    assert "Drive:" in message(page, ".messages")
    with pytest.raises(NotConnected):
        get_connection("drive", owner=ours).access_token
    assert not Token.objects.filter(owner_key__endswith=f":{theirs.pk}").exists()
    shot("disconnected")

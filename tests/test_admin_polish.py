"""Issue 15, part 6, below the browser: the connection page's details that the README tour
(tests/test_browser_tour.py) shows in Chromium, checked fast with Django's test client
against the real demo authorization server (django-oauth-toolkit on the live server)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from oauthconn import flows
from oauthconn.flows.outcomes import renewing_as
from oauthconn.flows.proactive import refresh_due
from oauthconn.models import Event, EventKind, TokenStatus
from tests.conftest import authorize, consent, deliver, outcome, start

pytestmark = pytest.mark.django_db(transaction=True)


def page_of(connection) -> str:
    return reverse("admin:oauthconn_connection_change", args=[connection.pk])


def test_test_and_disconnect_breadcrumbs_pass_through_the_app(staff_client, make_connection):
    connection = make_connection("crm", test_path="me/")
    outcome(staff_client, authorize(staff_client, connection))
    app = reverse("admin:app_list", args=["oauthconn"])
    for name in ("test", "disconnect"):
        url = reverse(f"admin:oauthconn_connection_{name}", args=[connection.pk])
        crumbs = breadcrumbs(staff_client.post(url).content.decode())
        assert f'<a href="{app}">OAuth connections</a>' in crumbs, crumbs


def breadcrumbs(html: str) -> str:
    return re.search(r'<div class="breadcrumbs">(.*?)</div>', html, re.S).group(1)


def test_refresh_message_gives_the_expiry_as_the_page_does(staff_client, make_connection):
    connection = make_connection("crm")
    outcome(staff_client, authorize(staff_client, connection))
    refresh = reverse("admin:oauthconn_connection_refresh", args=[connection.pk])
    html = staff_client.post(refresh, follow=True).content.decode()
    shown = re.search(r"<dt>Access token expires</dt><dd>(.*?)</dd>", html).group(1)
    assert f"a new access token, valid until {shown}." in html


def test_needs_reauthorization_offers_reauthorize_not_refresh(staff_client, make_connection):
    connection = make_connection("crm")
    outcome(staff_client, authorize(staff_client, connection))
    connection.tokens.update(status=TokenStatus.NEEDS_REAUTH)
    html = staff_client.get(page_of(connection)).content.decode()
    assert 'name="_authorize">Reauthorize<' in html
    assert 'name="_refresh"' not in html


def test_renewal_events_name_who_renewed(staff_client, staff, make_connection):
    connection = make_connection("crm")
    outcome(staff_client, authorize(staff_client, connection))
    token = connection.tokens.get()
    refresh = reverse("admin:oauthconn_connection_refresh", args=[connection.pk])
    staff_client.post(refresh)  # a button: the user
    flows.renew_now(connection, None)  # site code: nobody asked
    with renewing_as(source="nightly-job"):
        flows.renew_now(connection, None)
    labels = [e.actor_label for e in Event.objects.filter(token=token, kind=EventKind.REFRESHED)]
    assert labels == ["nightly-job", "automatic", "staff"]
    html = staff_client.get(page_of(connection)).content.decode()
    assert "Refreshed</strong> · by automatic" in html


def test_the_refresh_command_names_itself(staff_client, make_connection):
    connection = make_connection("crm")
    outcome(staff_client, authorize(staff_client, connection))
    connection.tokens.update(expires_at=connection.tokens.get().authorized_at)  # due
    assert refresh_due().as_dict()["refreshed"] == 1
    event = Event.objects.filter(kind=EventKind.REFRESHED).get()
    assert event.data["source"] == "oauthconn_refresh"
    assert event.actor_label == "oauthconn_refresh"


def test_a_failed_callback_leads_back_to_where_the_flow_started(staff_client, make_connection):
    connection = make_connection("crm")
    query = consent(staff_client, start(staff_client, connection, next="/admin/"))
    query.pop("code")
    query["error"] = ["access_denied"]
    result = outcome(staff_client, deliver(staff_client, connection, query))
    html = result.content.decode()
    assert result.status_code == 400
    assert 'id="oauthconn-back" href="/admin/">Back to where you started<' in html


def test_a_failed_callback_without_next_leads_to_the_connection(staff_client, make_connection):
    connection = make_connection("crm")
    query = consent(staff_client, start(staff_client, connection))
    query.pop("code")
    query["error"] = ["access_denied"]
    html = outcome(staff_client, deliver(staff_client, connection, query)).content.decode()
    assert f'id="oauthconn-back" href="{page_of(connection)}">Back to Crm<' in html

"""The health overview: one aggregate function behind the admin page and
``oauthconn_health --summary``, in a constant number of queries."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from oauthconn.flows.health import compute_health
from oauthconn.models import Connection, Event, EventKind, GrantType, Provider, Token, TokenStatus

pytestmark = pytest.mark.django_db

HEALTH_URL = "admin:oauthconn_connection_health"
#: The aggregate queries of compute_health: all grants, the grants not active by status,
#: the "expiring" figures, failures by provider, the hourly chart.
HEALTH_QUERIES = 5


@pytest.fixture
def now():
    return timezone.now()


def add_grant(connection: Connection, now, **fields) -> Token:
    defaults = {
        "access_token": "AT-canary",
        "refresh_token": "RT-canary",
        "refreshed_at": now,
        "expires_at": now + timedelta(hours=1),
    }
    return Token.objects.create(connection=connection, **{**defaults, **fields})


def add_events(connection: Connection, kind: str, at, n: int) -> None:
    Event.objects.bulk_create(
        Event(connection=connection, kind=kind, created_at=at) for _ in range(n)
    )


@pytest.fixture
def world(now):
    """Two providers, grants in every state, and events spread over the last week."""
    github = Provider.objects.create(slug="gh", name="GitHub", token_endpoint="https://g/t")
    google = Provider.objects.create(slug="gg", name="Google", token_endpoint="https://o/t")
    conns = {
        slug: Connection.objects.create(slug=slug, name=slug.upper(), provider=provider)
        for slug, provider in [
            ("crm", github),
            ("erp", google),
            ("hr", google),
            ("bi", github),
            ("m2m", github),
        ]
    }
    Connection.objects.filter(slug="m2m").update(grant_type=GrantType.CLIENT_CREDENTIALS)
    add_grant(conns["crm"], now, refresh_expires_at=now + timedelta(hours=5))
    add_grant(conns["erp"], now, refresh_token=None, expires_at=now + timedelta(days=3))
    add_grant(conns["hr"], now, status=TokenStatus.FAILING)
    add_grant(conns["bi"], now, status=TokenStatus.NEEDS_REAUTH)
    add_grant(conns["m2m"], now, refresh_token=None, expires_at=now + timedelta(minutes=5))
    hours = timedelta(hours=1)
    add_events(conns["crm"], EventKind.REFRESHED, now, 3)
    add_events(conns["crm"], EventKind.REFRESHED, now - 30 * hours, 2)
    add_events(conns["hr"], EventKind.REFRESH_FAILED, now - 1 * hours, 4)
    add_events(conns["bi"], EventKind.REFRESH_FAILED, now - 2 * hours, 1)
    add_events(conns["bi"], EventKind.REFRESH_FAILED, now - 40 * hours, 5)  # not in the 24 h
    add_events(conns["crm"], EventKind.REFRESHED, now - 8 * 24 * hours, 7)  # before the chart
    add_events(conns["crm"], EventKind.AUTHORIZED, now, 9)  # not charted
    return conns


def test_figures(world, now):
    health = compute_health(now)

    assert health.by_status == {"active": 3, "failing": 1, "needs_reauth": 1, "revoked": 0}
    # crm's refresh token expires in 5 h; erp has no refresh token and its access token ends
    # in 3 days; m2m is client credentials: renewed without anyone, never "expiring".
    assert health.expiring == {
        "24h": {"access_token": 0, "refresh_token": 1},
        "7d": {"access_token": 1, "refresh_token": 1},
    }
    assert health.failures_by_provider == [("Google", 4), ("GitHub", 1)]
    assert len(health.hours) == 7 * 24
    assert health.refreshes[-1] == 3 and health.refreshes[-31] == 2
    assert sum(health.refreshes) == 5
    assert health.failures[-2] == 4 and health.failures[-3] == 1 and health.failures[-41] == 5
    assert sum(health.failures) == 10


def test_idle_refresh_tokens_count_as_going_stale(world, now, settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "IDLE_REFRESH_DAYS": 30}
    Token.objects.filter(connection__slug="crm").update(
        refresh_expires_at=None, refreshed_at=now - timedelta(days=25)
    )
    assert compute_health(now).expiring["7d"]["refresh_token"] == 1
    assert compute_health(now).expiring["24h"]["refresh_token"] == 0


def test_a_never_refreshed_grant_is_idle_from_its_authorization(world, now, settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "IDLE_REFRESH_DAYS": 30}
    Token.objects.filter(connection__slug="crm").update(
        refresh_expires_at=None, refreshed_at=None, authorized_at=now - timedelta(days=25)
    )
    assert compute_health(now).expiring["7d"]["refresh_token"] == 1
    assert compute_health(now).expiring["24h"]["refresh_token"] == 0
    Token.objects.filter(connection__slug="crm").update(authorized_at=None)  # unknown: not idle
    assert compute_health(now).expiring["7d"]["refresh_token"] == 0


def test_constant_number_of_queries(world, now, django_assert_max_num_queries):
    with django_assert_max_num_queries(HEALTH_QUERIES):
        compute_health(now)
    for i in range(30):
        connection = Connection.objects.create(
            slug=f"more{i}", name=f"More {i}", provider=Provider.objects.get(slug="gh")
        )
        add_grant(connection, now, status=TokenStatus.FAILING)
        add_events(connection, EventKind.REFRESH_FAILED, now - timedelta(hours=i), 3)
    with CaptureQueriesContext(db_connection) as queries:
        health = compute_health(now)
    assert len(queries) == HEALTH_QUERIES
    assert health.by_status["failing"] == 31


@pytest.fixture
def viewer(django_user_model, client):
    """Staff with nothing but view permission on connections."""
    user = django_user_model.objects.create_user("ops", "ops@example.com", "pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_connection"))
    client.force_login(user)
    return user


def test_page_shows_the_figures_and_an_svg_chart(world, viewer, client):
    response = client.get(reverse(HEALTH_URL))

    assert response.status_code == 200
    html = response.content.decode()
    assert '<div class="breadcrumbs">' in html and "Health" in html
    assert response.context["health"].by_status["failing"] == 1
    assert "<svg" in html and html.count('class="failed"') == 3  # three hours with failures
    assert "Google</th><td>4" in html
    assert "<script" not in html.split('id="content-main"')[1]  # no JS for the chart
    assert "canary" not in html


def test_page_needs_view_permission(world, django_user_model, client):
    user = django_user_model.objects.create_user("ops", "ops@example.com", "pw", is_staff=True)
    client.force_login(user)
    assert client.get(reverse(HEALTH_URL)).status_code == 403


def test_page_is_for_staff_only(world, django_user_model, client):
    user = django_user_model.objects.create_user("user", "u@example.com", "pw")
    user.user_permissions.add(Permission.objects.get(codename="view_connection"))
    client.force_login(user)
    response = client.get(reverse(HEALTH_URL))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_page_queries_do_not_grow_with_the_data(world, viewer, client, now):
    client.get(reverse(HEALTH_URL))  # warm up the session and content types
    with CaptureQueriesContext(db_connection) as few:
        client.get(reverse(HEALTH_URL))
    add_events(Connection.objects.get(slug="hr"), EventKind.REFRESH_FAILED, now, 500)
    with CaptureQueriesContext(db_connection) as many:
        client.get(reverse(HEALTH_URL))
    assert len(many) == len(few)


def test_app_index_and_change_list_link_to_it(viewer, client):
    target = reverse(HEALTH_URL)
    assert target in client.get(reverse("admin:app_list", args=["oauthconn"])).content.decode()
    assert target in client.get(reverse("admin:oauthconn_connection_changelist")).content.decode()


def run_health(*args) -> str:
    out = io.StringIO()
    call_command("oauthconn_health", *args, stdout=out)
    return out.getvalue()


def test_command_summary_json_is_one_object_with_the_page_figures(world):
    out = io.StringIO()
    with pytest.raises(CommandError, match="2 grant"):
        call_command("oauthconn_health", "--summary", "--json", stdout=out)
    (line,) = out.getvalue().splitlines()
    summary = json.loads(line)
    assert summary["type"] == "summary" and summary["grants"] == 5
    assert summary["by_status"]["needs_reauth"] == 1
    assert summary["refresh_failures_24h"] == {"Google": 4, "GitHub": 1}
    assert summary["expiring"]["7d"] == {"access_token": 1, "refresh_token": 1}
    assert len(summary["hourly"]) == 168 and summary["hourly"][-1]["refreshed"] == 3
    assert "canary" not in line


def test_command_summary_in_words(now):
    provider = Provider.objects.create(slug="p", name="P", token_endpoint="https://p/t")
    add_grant(Connection.objects.create(slug="crm", name="CRM", provider=provider), now)
    text = run_health("--summary")
    assert text.splitlines()[0] == "1 grant(s): 1 active, 0 failing, 0 needs_reauth, 0 revoked."
    assert "Refresh failures in the last 24 hours by provider: none." in text


def test_the_event_index_exists():
    with db_connection.cursor() as cursor:
        constraints = db_connection.introspection.get_constraints(cursor, Event._meta.db_table)
    assert constraints["oauthconn_event_kind_time"]["columns"] == ["kind", "created_at"]


def test_grants_by_status_are_counted_from_the_status_index_alone(world, now):
    """COUNT(*) rather than COUNT(id): the (status, expires_at) index holds every column the
    query needs, so PostgreSQL may count grants with an index-only scan. Only the grants
    that are not active are grouped, by the two index ranges either side of "active":
    grouping the active ones too read a million entries for the one figure that a plain
    count of all grants gives faster."""
    with CaptureQueriesContext(db_connection) as queries:
        compute_health(now)
    (by_status,) = [q["sql"] for q in queries if "GROUP BY" in q["sql"] and "status" in q["sql"]]
    assert "COUNT(*)" in by_status and '"oauthconn_token"."id"' not in by_status, by_status
    assert '"status" < ' in by_status and '"status" > ' in by_status, by_status
    assert "<>" not in by_status and "NOT" not in by_status, by_status


def test_a_status_outside_the_choices_is_counted_as_itself(world, now):
    Token.objects.filter(connection__slug="crm").update(status="paused")
    health = compute_health(now)
    assert health.by_status == {
        "active": 2,
        "failing": 1,
        "needs_reauth": 1,
        "revoked": 0,
        "paused": 1,
    }
    assert health.grants == 5


def test_the_chart_keeps_apart_the_hour_that_happens_twice(settings):
    """When summer time ends one local hour happens twice. Grouping by the truncated local
    time made one ambiguous local time of both, which never equals an hour of the chart
    (PEP 495), so their events were missing: the chart showed both hours empty."""
    settings.TIME_ZONE = "Europe/Paris"
    provider = Provider.objects.create(slug="p", name="P", token_endpoint="https://p/t")
    crm = Connection.objects.create(slug="crm", name="CRM", provider=provider)
    # 2026-10-25: 03:00 CEST became 02:00 CET at 01:00 UTC.
    add_events(crm, EventKind.REFRESHED, datetime(2026, 10, 25, 0, 30, tzinfo=UTC), 2)
    add_events(crm, EventKind.REFRESHED, datetime(2026, 10, 25, 1, 30, tzinfo=UTC), 5)
    add_events(crm, EventKind.REFRESH_FAILED, datetime(2026, 10, 25, 1, 59, tzinfo=UTC), 1)

    health = compute_health(datetime(2026, 10, 25, 2, 30, tzinfo=UTC))  # 03:30 CET

    assert [f"{hour:%H:%M}" for hour in health.hours[-3:]] == ["00:00", "01:00", "02:00"]
    assert health.refreshes[-3:] == [2, 5, 0] and health.failures[-3:] == [0, 1, 0]

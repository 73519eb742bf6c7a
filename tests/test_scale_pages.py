"""Issue 11: list pages whose cost does not grow with the tables.

Constant query counts at two sizes for every admin and API list and filter; no full-table
COUNT(*); a connection filter that does not list every connection; API clients that follow
``next`` see every row even when ``count`` is an estimate; the due-token query uses indexes
(PostgreSQL, EXPLAIN). Timing goals live in benchmarks/pages.py, not here.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection as db
from django.forms import CheckboxInput
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from oauthconn import paging
from oauthconn.admin import records
from oauthconn.flows.proactive import Policy
from oauthconn.models import Connection, Event, Provider, Token, TokenStatus
from tests.migrations import migrated_back_to

pytestmark = pytest.mark.django_db

ADMIN = "/admin/oauthconn"
API = "/api/oauthconn"
STATUSES = ["active", "failing", "needs_reauth", "revoked"]


@pytest.fixture
def providers() -> list[Provider]:
    return [
        Provider.objects.create(slug=f"p{i}", name=f"P{i}", token_endpoint="https://p.test/t")
        for i in range(2)
    ]


def grow(providers: list[Provider], total: int, user) -> None:
    """Connections up to ``total``: every third per-user (the user's grant), one event each."""
    for n in range(Connection.objects.count(), total):
        per_user = n % 3 == 0
        connection = Connection.objects.create(
            slug=f"c{n}", name=f"C{n}", provider=providers[n % 2], client_id="x", per_user=per_user
        )
        token = Token.objects.create(
            connection=connection,
            owner=user if per_user else None,
            access_token="at",
            refresh_token="rt",
            status=STATUSES[n % len(STATUSES)],
            expires_at=timezone.now() + timedelta(hours=n),
        )
        Event.objects.create(connection=connection, token=token, kind="refreshed")


def urls(provider: Provider) -> list[str]:
    connection = Connection.objects.order_by("pk").first()
    admin = [f"{ADMIN}/connection/?status={s}" for s in ["connected", "expiring", *STATUSES]]
    admin += [f"{ADMIN}/token/?status__exact={s}" for s in STATUSES]
    admin += [
        f"{ADMIN}/connection/",
        f"{ADMIN}/connection/?status=not_connected",
        f"{ADMIN}/connection/?provider__id__exact={provider.pk}",
        f"{ADMIN}/connection/?q=C1",
        f"{ADMIN}/token/",
        f"{ADMIN}/token/?connection={connection.pk}",
        f"{ADMIN}/token/?connection__provider__id__exact={provider.pk}",
        f"{ADMIN}/token/?q={connection.slug}",
        f"{ADMIN}/event/",
        f"{ADMIN}/event/?kind__exact=refreshed",
        f"{ADMIN}/event/?connection={connection.pk}",
        f"{ADMIN}/event/?connection__provider__id__exact={provider.pk}",
        f"{ADMIN}/provider/",
    ]
    api = [f"{API}/connections/?status={s}" for s in [*STATUSES, "not_connected"]]
    api += [
        f"{API}/connections/",
        f"{API}/connections/?provider={provider.slug}",
        f"{API}/connections/?per_user=true",
        f"{API}/connections/?per_user=false",
        f"{API}/me/connections/",
        f"{API}/providers/",
    ]
    return admin + api


def queries(client, url: str) -> int:
    with CaptureQueriesContext(db) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return len(captured)


def test_every_list_and_filter_costs_the_same_queries_at_5_and_40_rows(providers, admin_user):
    client = APIClient()
    client.force_login(admin_user)
    grow(providers, 5, admin_user)  # every status and both kinds of connection appear
    few = {url: queries(client, url) for url in urls(providers[0])}
    grow(providers, 40, admin_user)
    many = {url: queries(client, url) for url in urls(providers[0])}
    assert many == few


def test_no_list_counts_a_whole_table(providers, admin_user, client):
    """Every COUNT is over a LIMITed subquery: bounded work however large the table."""
    client.force_login(admin_user)
    grow(providers, 5, admin_user)
    for url in urls(providers[0]):
        with CaptureQueriesContext(db) as captured:
            client.get(url)
        for query in captured:
            if "COUNT(" in query["sql"].upper():
                assert re.search(r"LIMIT \d+\)", query["sql"]), (url, query["sql"])


def test_connection_filter_lists_connections_only_while_they_are_few(
    providers, admin_user, client, monkeypatch
):
    client.force_login(admin_user)
    grow(providers, 4, admin_user)
    first, second = Connection.objects.order_by("pk")[:2]
    page = client.get(f"{ADMIN}/token/").content.decode()
    assert f"?connection={second.pk}" in page  # few: every connection is offered
    monkeypatch.setattr(records, "CONNECTION_CHOICES_UP_TO", 3)
    page = client.get(f"{ADMIN}/token/").content.decode()
    assert "?connection=" not in page and "connection__id__exact" not in page
    page = client.get(f"{ADMIN}/token/?connection={first.pk}").content.decode()
    assert f"?connection={first.pk}" in page and f"?connection={second.pk}" not in page
    # The rows are filtered too. (Read in the result table only: the page's icons and its
    # random CSRF token may contain "c0" or "c1", which is how this once passed and failed.)
    start = page.index('id="result_list"')
    rows = page[start : page.index("</table>", start)]
    assert re.search(rf">{first.name}\b", rows) and not re.search(rf">{second.name}\b", rows)


def test_admin_search_finds_a_connections_grants_by_exact_slug(providers, admin_user, client):
    client.force_login(admin_user)
    grow(providers, 12, admin_user)
    response = client.get(f"{ADMIN}/token/?q=c11")
    assert [t.connection.slug for t in response.context["cl"].result_list] == ["c11"]


@pytest.mark.parametrize("model", ["token", "event"])
def test_admin_search_by_slug_compares_the_slug_as_the_unique_index_holds_it(
    providers, admin_user, client, model
):
    """Django's "=slug" search is iexact (UPPER(slug) = UPPER(...)), which the unique index
    on the slug cannot answer: each search read every connection."""
    client.force_login(admin_user)
    grow(providers, 3, admin_user)
    with CaptureQueriesContext(db) as captured:
        response = client.get(f"{ADMIN}/{model}/?q=c1")
    assert len(response.context["cl"].result_list) == 1
    searches = [q["sql"] for q in captured if '"oauthconn_connection"."slug" = ' in q["sql"]]
    assert searches, [q["sql"] for q in captured]
    assert not [q for q in searches if "UPPER(" in q or " LIKE " in q], searches


def test_following_next_sees_every_row_when_the_count_is_an_estimate(
    providers, admin_user, monkeypatch, settings
):
    monkeypatch.setattr(paging, "EXACT_UP_TO", 5)
    settings.OAUTHCONN = {**settings.OAUTHCONN, "API_PAGE_SIZE": 4}
    grow(providers, 13, admin_user)
    client = APIClient()
    client.force_login(admin_user)
    page = client.get(f"{API}/connections/").json()
    assert page["count"] > 5  # past the bound: at least what was seen, maybe an estimate
    seen = [c["slug"] for c in page["results"]]
    while page["next"]:
        page = client.get(page["next"]).json()
        seen += [c["slug"] for c in page["results"]]
    assert sorted(seen) == sorted(Connection.objects.values_list("slug", flat=True))


def test_admin_pages_past_an_estimated_count_still_open(providers, admin_user, client, monkeypatch):
    monkeypatch.setattr(paging, "EXACT_UP_TO", 5)
    monkeypatch.setattr(records.TokenAdmin, "list_per_page", 5)
    client.force_login(admin_user)
    grow(providers, 13, admin_user)
    response = client.get(f"{ADMIN}/token/?p=3")  # the count says 6 rows (2 pages); 13 exist
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 3


def test_status_filter_reads_only_the_callers_own_grant_on_per_user_connections(
    providers, admin_user, django_user_model
):
    other = django_user_model.objects.create_user("other")
    provider = providers[0]
    shared = Connection.objects.create(slug="shared", name="S", provider=provider)
    mine = Connection.objects.create(slug="mine", name="M", provider=provider, per_user=True)
    theirs = Connection.objects.create(slug="theirs", name="T", provider=provider, per_user=True)
    Token.objects.create(connection=shared, access_token="a", status=TokenStatus.FAILING)
    Token.objects.create(connection=mine, owner=admin_user, access_token="a", status="failing")
    Token.objects.create(connection=theirs, owner=other, access_token="a", status="failing")
    # A stray shared row on a per-user connection is not the caller's grant either.
    Token.objects.create(connection=theirs, access_token="a", status=TokenStatus.ACTIVE)
    client = APIClient()
    client.force_login(admin_user)

    def slugs(status: str) -> list[str]:
        page = client.get(f"{API}/connections/?status={status}").json()
        return [c["slug"] for c in page["results"]]

    assert slugs("failing") == ["mine", "shared"]
    assert slugs("active") == []
    assert slugs("not_connected") == ["theirs"]


def test_status_filter_is_one_semi_join_not_a_subquery_per_row(providers, admin_user):
    from oauthconn.api.queries import filter_status

    sql = str(filter_status(Connection.objects.all(), "failing", admin_user).query).upper()
    assert "EXISTS" in sql and "CASE" not in sql


def fill_healthy_tokens(count: int) -> None:
    """``count`` shared grants, none due (PostgreSQL: generate_series), then ANALYZE."""
    provider = Provider.objects.create(slug="bulk", name="Bulk", token_endpoint="https://b.test")
    with db.cursor() as cursor:
        cursor.execute(
            "INSERT INTO oauthconn_connection (slug, name, provider_id, grant_type, client_id, "
            "client_auth_method, private_key_id, published_jwks, scopes, "
            "extra_authorize_params, extra_token_params, api_base_url, per_user, test_path, "
            "metadata, created_at, updated_at) SELECT 'bulk-' || n, 'Bulk ' || n, %s, "
            "'authorization_code', 'x', 'client_secret_basic', '', '[]', '', '{}', '{}', '', "
            "false, '', '{}', now(), now() FROM generate_series(1, %s) AS n",
            [provider.pk, count],
        )
        cursor.execute(
            "INSERT INTO oauthconn_token (connection_id, access_token, refresh_token, "
            "token_type, expires_at, scope, subject, claims, status, authorized_at, "
            "refreshed_at, last_error, last_error_code, failure_count, revocation_pending, "
            "updated_at) SELECT id, 'ct', 'ct', 'Bearer', now() + interval '1 day', '', '', "
            "'{}', 'active', now(), now(), '', '', 0, false, now() "
            "FROM oauthconn_connection WHERE provider_id = %s",
            [provider.pk],
        )
        cursor.execute("ANALYZE oauthconn_connection, oauthconn_token")


@pytest.mark.postgres
def test_due_token_query_is_answered_by_indexes(on_postgres):
    """Each arm of the due-token OR has an index, so PostgreSQL ORs index scans (BitmapOr)
    instead of reading every grant: before 0006/0007 the ORs left the idle and ending arms
    without one, and the only usable index (status) matches nearly every row."""
    assert on_postgres
    fill_healthy_tokens(5000)
    sql, params = Policy.from_settings(idle_days=30).candidates().query.sql_with_params()
    with db.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan on oauthconn_token" not in plan, plan
    assert "BitmapOr" in plan, plan
    for index in ("oauthconn_token_refresh_ends", "oauthconn_token_last_used"):
        assert index in plan, plan


def test_health_command_reads_only_the_grants_that_need_attention(providers, admin_user):
    import io

    from django.core.management import CommandError, call_command

    grow(providers, 8, admin_user)  # failing and needs_reauth among them
    out = io.StringIO()
    with CaptureQueriesContext(db) as captured, pytest.raises(CommandError):
        call_command("oauthconn_health", stdout=out)
    reads = [
        q["sql"] for q in captured if q["sql"].startswith("SELECT") and "COUNT" not in q["sql"]
    ]
    assert len(reads) == 1 and "WHERE" in reads[0], reads
    assert "c1: Failing" in out.getvalue() and "c2" in out.getvalue()


def test_a_filter_matching_nothing_skips_the_page_query(providers, admin_user):
    grow(providers, 5, admin_user)  # every connection has a grant: none is "not connected"
    client = APIClient()
    client.force_login(admin_user)
    with CaptureQueriesContext(db) as captured:
        page = client.get(f"{API}/connections/?status=not_connected").json()
    assert page == {"count": 0, "next": None, "previous": None, "results": []}
    reads = [
        q["sql"]
        for q in captured
        if 'FROM "oauthconn_connection"' in q["sql"] and not q["sql"].startswith("EXPLAIN")
    ]
    # The one read finds the matches (none), which also counts them: no page is read.
    assert len(reads) == 1 and "ORDER BY" not in reads[0], reads


def test_connection_filter_costs_the_same_queries_past_the_choice_limit(
    providers, admin_user, client, monkeypatch
):
    client.force_login(admin_user)
    grow(providers, 3, admin_user)
    chosen = Connection.objects.order_by("pk").first()
    url = f"{ADMIN}/token/?connection={chosen.pk}"
    few = queries(client, url)
    monkeypatch.setattr(records, "CONNECTION_CHOICES_UP_TO", 2)
    assert queries(client, url) == few


def page_queries(captured) -> list[str]:
    """The change list's own SELECTs of connections (not its count, not the estimate)."""
    return [
        q["sql"]
        for q in captured
        if q["sql"].startswith('SELECT "oauthconn_connection"."id"') and "ORDER BY" in q["sql"]
    ]


def test_admin_page_query_is_limited_when_the_matches_fit_on_one_page(
    providers, admin_user, client
):
    """Django lists one page's worth of matches without a LIMIT, which made PostgreSQL find
    and sort every match of a rare filter among a million connections before the first row."""
    client.force_login(admin_user)
    grow(providers, 8, admin_user)
    with CaptureQueriesContext(db) as captured:
        response = client.get(f"{ADMIN}/connection/?status=failing")
    assert response.status_code == 200 and len(response.context["cl"].result_list) == 2
    reads = page_queries(captured)
    assert len(reads) == 1 and re.search(r"LIMIT 2\b", reads[0]), reads
    with CaptureQueriesContext(db) as captured:
        response = client.get(f"{ADMIN}/connection/?status=not_connected")  # no match
    assert response.status_code == 200 and list(response.context["cl"].result_list) == []
    assert page_queries(captured) == []


def test_api_status_filter_is_linked_to_the_listed_connection_by_its_id_only(providers, admin_user):
    """Which grant is the caller's is decided inside the EXISTS, from the grant's own
    connection: a condition on the outer row's per_user kept PostgreSQL from starting at the
    few grants in a rare status, so it read every connection instead."""
    from oauthconn.api.queries import filter_status

    sql = str(filter_status(Connection.objects.all(), "failing", admin_user).query)
    inner = sql[sql.index("EXISTS") :]
    assert '"oauthconn_connection"."id"' in inner  # the correlation
    assert '"oauthconn_connection"."per_user"' not in inner, inner
    assert '"oauthconn_connection"."per_owner"' not in inner, inner


def explain(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with db.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgres
def test_expiring_grants_without_a_refresh_token_are_found_by_an_index(on_postgres):
    """Access tokens live for hours and "expiring" looks days ahead, so (status, expires_at)
    matches nearly every grant: the partial index on grants without a refresh token (0017)
    is what keeps the expiring filter and the health command off the whole table."""
    from oauthconn.status import EXPIRING, token_filter

    assert on_postgres
    fill_healthy_tokens(5000)
    plan = explain(Token.objects.filter(token_filter(EXPIRING)))
    assert "Seq Scan on oauthconn_token" not in plan, plan
    assert "oauthconn_token_access_ends" in plan, plan


@pytest.mark.postgres
def test_the_planner_knows_how_few_grants_are_idle(on_postgres):
    """Statistics on COALESCE(refreshed_at, authorized_at) (0017): without them PostgreSQL
    assumes a third of all grants idle (it ignores a partial index's statistics), estimates
    the due-token query at thousands of rows and joins every connection instead of the few
    due grants' own."""
    assert on_postgres
    fill_healthy_tokens(5000)  # all refreshed now: none idle, none due
    sql, params = Policy.from_settings(idle_days=30).candidates().query.sql_with_params()
    with db.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    estimate = plan[0]["Plan"]["Plan Rows"]
    assert estimate < 100, plan


@pytest.mark.postgres
def test_health_overview_reads_only_the_grants_that_end_within_its_windows(on_postgres):
    """The overview's "expiring" figures counted over every usable grant (a full scan);
    restricted to the widest window, the partial indexes answer it."""
    from oauthconn.flows.health import compute_health

    assert on_postgres
    fill_healthy_tokens(5000)
    with CaptureQueriesContext(db) as captured:
        health = compute_health()
    assert health.expiring == {
        "24h": {"access_token": 0, "refresh_token": 0},
        "7d": {"access_token": 0, "refresh_token": 0},
    }
    (query,) = [q["sql"] for q in captured if "refresh_expires_at" in q["sql"]]
    with db.cursor() as cursor:
        cursor.execute(f"EXPLAIN {query}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Seq Scan on oauthconn_token" not in plan, plan


@pytest.mark.postgres
def test_connection_search_is_answered_by_the_trigram_index(on_postgres, admin_user, client):
    """The search box matches any part of a name: without 0018's trigram index PostgreSQL
    read every connection for each search (and again for the page)."""
    assert on_postgres
    fill_healthy_tokens(50_000)
    client.force_login(admin_user)
    results, plan = admin_list_and_count_plan(client, "?q=ulk+49876")
    assert [c.slug for c in results] == ["bulk-49876"]
    assert "oauthconn_connection_name_trgm" in plan, plan
    assert "Seq Scan on oauthconn_connection" not in plan, plan


@pytest.mark.postgres
def test_not_connected_is_answered_by_the_held_grants_index(on_postgres, admin_user, client):
    """Proving that no connection of a million is "not connected" read both tables (a hash
    anti-join, 0.5–0.9 s); the count kept by 0019's triggers has a partial index."""
    assert on_postgres
    fill_healthy_tokens(5000)
    client.force_login(admin_user)
    results, plan = admin_list_and_count_plan(client, "?status=not_connected")
    assert list(results) == []
    assert "oauthconn_connection_unheld" in plan, plan
    assert "oauthconn_token" not in plan, plan


def admin_list_and_count_plan(client, query: str) -> tuple[list, str]:
    """The admin connection list's rows for ``query`` and the plan of its count."""
    with CaptureQueriesContext(db) as captured:
        response = client.get(f"{ADMIN}/connection/{query}")
    assert response.status_code == 200
    (count,) = [q["sql"] for q in captured if q["sql"].startswith("SELECT COUNT(*)")]
    with db.cursor() as cursor:
        cursor.execute(f"EXPLAIN {count}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    return response.context["cl"].result_list, plan


def test_the_row_checkbox_is_djangos_own_html(providers, monkeypatch):
    """BoundedListAdmin writes the action checkbox without a form widget per row: the same
    bytes Django renders (admin's actions.js finds the rows by its name and class), the
    object's name escaped once."""
    from django.contrib import admin

    connection = Connection.objects.create(
        slug="x", name='<b>"R&D" & co</b>', provider=providers[0], client_id="x"
    )
    model_admin = admin.site._registry[Connection]
    assert isinstance(model_admin, records.BoundedListAdmin)
    djangos = admin.ModelAdmin.action_checkbox(model_admin, connection)
    monkeypatch.setattr(CheckboxInput, "render", lambda *args, **kwargs: "a widget per row")
    ours = model_admin.action_checkbox(connection)
    assert ours == djangos
    assert 'action - &lt;b&gt;&quot;R&amp;D&quot; &amp; co&lt;/b&gt;">' in ours


def test_a_list_builds_its_nested_serializers_once(providers, admin_user, monkeypatch):
    """A ModelSerializer builds its fields per instance: the API's lists build the token's
    and its events' serializers once per page, not once per item."""
    from oauthconn.api import serializers

    built: list[type] = []
    for cls in (serializers.TokenSerializer, serializers.EventSerializer):
        original = cls.get_fields
        monkeypatch.setattr(
            cls,
            "get_fields",
            lambda self, original=original: built.append(type(self)) or original(self),
        )
    client = APIClient()
    client.force_login(admin_user)
    grow(providers, 12, admin_user)
    response = client.get(f"{API}/connections/")
    items = response.json()["results"]
    assert len(items) == 12 and all(item["token"]["recent_events"] for item in items)
    assert sorted(t.__name__ for t in built) == ["EventSerializer", "TokenSerializer"]


def grants(connection: Connection, users, **fields) -> None:
    fields = {"access_token": "at", "status": "active", **fields}
    Token.objects.bulk_create(Token(connection=connection, owner=user, **fields) for user in users)


@pytest.fixture
def popular(providers, django_user_model) -> Connection:
    """A per-user connection with seven grants: five connected, one failing, one empty."""
    connection = Connection.objects.create(
        slug="drive", name="Drive", provider=providers[0], client_id="x", per_user=True
    )
    users = django_user_model.objects.bulk_create(
        django_user_model(username=f"user{n}") for n in range(7)
    )
    grants(connection, users[:5])
    grants(connection, users[5:6], status="failing")
    grants(connection, users[6:], access_token=None)
    return connection


def test_the_change_list_counts_a_per_user_connections_grants_without_loading_them(
    popular, providers, admin_user, client, monkeypatch
):
    """A popular per-user connection has a grant per user: its row counts them in the
    database (bounded), and the page loads only the shared connections' grants."""
    from django.db.models.signals import post_init

    from oauthconn import status

    shared = Connection.objects.create(slug="crm", name="CRM", provider=providers[0], client_id="x")
    Token.objects.create(connection=shared, access_token="at")
    client.force_login(admin_user)
    loaded: list[Token] = []
    collect = lambda sender, instance, **kwargs: loaded.append(instance)  # noqa: E731
    post_init.connect(collect, sender=Token)
    try:
        html = client.get(f"{ADMIN}/connection/").content.decode()
    finally:
        post_init.disconnect(collect, sender=Token)
    assert '<span class="oauthconn-badge">5 connected</span>' in html
    assert [token.connection_id for token in loaded] == [shared.pk]

    monkeypatch.setattr(status, "CONNECTED_COUNTED_UP_TO", 3)
    html = client.get(f"{ADMIN}/connection/").content.decode()
    assert '<span class="oauthconn-badge">3+ connected</span>' in html


def test_the_connection_page_lists_the_first_grants_and_links_to_all_of_them(
    popular, admin_user, client, monkeypatch
):
    from oauthconn.admin import connections

    client.force_login(admin_user)
    page = reverse("admin:oauthconn_connection_change", args=[popular.pk])
    monkeypatch.setattr(connections, "GRANTS_LISTED", 7)
    html = client.get(page).content.decode()
    assert html.count("<tr><td>user") == 7
    assert "oauthconn-all-grants" not in html

    monkeypatch.setattr(connections, "GRANTS_LISTED", 4)
    html = client.get(page).content.decode()
    assert re.findall(r"<tr><td>(user\d)</td>", html) == ["user0", "user1", "user2", "user3"]
    link = re.search(r'id="oauthconn-all-grants">.*?<a href="([^"]+)"', html)
    assert link, html
    tokens = client.get(link.group(1).replace("&amp;", "&")).content.decode()
    assert tokens.count('class="action-select"') == 7


def token_indexes_on(columns: list[str]) -> list[str]:
    with db.cursor() as cursor:
        constraints = db.introspection.get_constraints(cursor, "oauthconn_token")
    return [name for name, c in constraints.items() if c["index"] and c["columns"] == columns]


@pytest.mark.django_db(transaction=True)
def test_the_owners_own_index_is_dropped_and_comes_back_with_the_migration_reversed():
    """``(owner, connection)`` leads with the owner. With the owner's own index as well,
    PostgreSQL walked it for a popular connection's page and read every grant of the owners
    who come first (migration 0023)."""
    assert token_indexes_on(["owner_id"]) == []
    assert token_indexes_on(["owner_id", "connection_id"]) == ["oauthconn_token_owner_conn"]
    with migrated_back_to("0022_grant_counts_per_statement"):
        assert len(token_indexes_on(["owner_id"])) == 1
    assert token_indexes_on(["owner_id"]) == []


@pytest.mark.parametrize("model", ["token", "event"])
def test_the_provider_filter_asks_for_that_providers_connections(
    providers, admin_user, client, model
):
    """A semi-join (``connection_id IN (…)``), not a join on the connection's provider: the
    database can then look each connection up once while it walks the newest rows."""
    client.force_login(admin_user)
    grow(providers, 6, admin_user)
    first, second = providers
    url = f"{ADMIN}/{model}/?connection__provider__id__exact={first.pk}"
    with CaptureQueriesContext(db) as captured:
        page = client.get(url).content.decode()
    listed = [q["sql"] for q in captured if q["sql"].startswith(f'SELECT "oauthconn_{model}"."id"')]
    assert listed and all('"connection_id" IN (SELECT' in sql for sql in listed)
    start = page.index('id="result_list"')
    rows = page[start : page.index("</table>", start)]
    mine = Connection.objects.filter(provider=first).values_list("name", flat=True)
    others = Connection.objects.filter(provider=second).values_list("name", flat=True)
    assert all(re.search(rf">{name}\b", rows) for name in mine)
    assert not any(re.search(rf">{name}\b", rows) for name in others)
    # A value that is no provider's id is Django's "incorrect lookup" (?e=1), not an error.
    response = client.get(f"{ADMIN}/{model}/?connection__provider__id__exact=x")
    assert response.status_code == 302 and response.url.endswith("?e=1")


def test_the_token_list_leaves_the_secrets_and_claims_in_the_database(
    providers, admin_user, client
):
    """It shows metadata only; its delete action still works on the rows it lists."""
    client.force_login(admin_user)
    grow(providers, 5, admin_user)
    with CaptureQueriesContext(db) as captured:
        page = client.get(f"{ADMIN}/token/")
    assert page.status_code == 200 and b"action-select" in page.content
    reads = [q["sql"] for q in captured if q["sql"].startswith("SELECT") and "token" in q["sql"]]
    listed = [sql for sql in reads if '"oauthconn_token"."status"' in sql and "LIMIT" in sql]
    assert listed, reads
    for column in ["access_token", "refresh_token", "id_token", "dpop_key", "claims"]:
        assert not any(f'"oauthconn_token"."{column}"' in sql for sql in listed), column
    chosen = list(Token.objects.values_list("pk", flat=True)[:2])
    client.post(
        f"{ADMIN}/token/",
        {"action": "delete_selected", "_selected_action": chosen, "post": "yes"},
    )
    assert not Token.objects.filter(pk__in=chosen).exists()
    assert Token.objects.count() == 3

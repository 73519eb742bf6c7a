"""Grants owned by teams (issue 12, part 5): per-owner connections beside shared and per-user.

The test site's owner model is ``tests.teams.models.Team`` and its resolver ``teams_of`` (the
teams a user is a member of), set in tests/settings.py. The happy paths run against
django-oauth-toolkit over real HTTP (``make_connection``); membership is changed between the
start and the callback to show that oauthconn asks the resolver again.
"""

# ruff: noqa: F811  (the fixtures imported from tests/test_oidc_live.py are named as arguments)
from __future__ import annotations

import pytest
from django.db import connection as default_db
from django.test import Client
from django.urls import reverse
from oauth2_provider.models import AccessToken, Application

from oauthconn import get_connection, signals
from oauthconn.exceptions import ConfigurationError, NotConnected, ScopesRequired
from oauthconn.models import Connection, Event, EventKind, PendingAuthorization, Provider, Token
from oauthconn.models.owners import owner_key
from tests.conftest import consent, deliver, outcome, start
from tests.migrations import migrate_to, migrated_back_to, provider_and_managers
from tests.teams.models import Project, Team
from tests.test_oidc_live import (  # noqa: F401  (fixtures shared with it)
    issuer,
    oidc_provider,
)

ME = "/api/oauthconn/me/connections/"


@pytest.fixture
def people(django_user_model):
    alice = django_user_model.objects.create_user("alice", password="pw")
    bob = django_user_model.objects.create_user("bob", password="pw")
    carol = django_user_model.objects.create_user("carol", password="pw")
    return alice, bob, carol


@pytest.fixture
def teams(people):
    """Team A: alice and carol; team B: bob."""
    alice, bob, carol = people
    team_a = Team.objects.create(name="Team Apricot")
    team_b = Team.objects.create(name="Team Blueberry")
    team_a.members.add(alice, carol)
    team_b.members.add(bob)
    return team_a, team_b


def connect_team(client, connection: Connection, team: Team):
    """The whole browser leg for ``team``: start (naming the team), consent, callback."""
    return deliver(client, connection, consent(client, start(client, connection, owner=team.pk)))


# --- the happy path, against django-oauth-toolkit ---------------------------------------------


def test_a_member_connects_the_team_and_site_code_uses_its_grant(
    client, people, teams, make_connection
):
    alice, bob, carol = people
    team_a, team_b = teams
    connection = make_connection("crm", per_owner=True)
    client.force_login(alice)
    page = client.get("/oauthconn/")
    assert b"Team Apricot" in page.content and b"Team Blueberry" not in page.content
    assert b"Connect Team Apricot's Test authorization server account" in page.content

    received = []

    def receiver(**kwargs):
        received.append((kwargs["owner"], kwargs["owner_key"]))

    signals.authorized.connect(receiver)
    try:
        response = connect_team(client, connection, team_a)
    finally:
        signals.authorized.disconnect(receiver)
    assert response["Location"] == "/oauthconn/"
    assert received == [(None, f"teams.team:{team_a.pk}")]

    token = Token.objects.get(connection=connection)
    assert (token.owner_id, token.owner_key) == (None, f"teams.team:{team_a.pk}")
    assert token.authorized_by == alice
    crm = get_connection("crm", owner=team_a)
    assert AccessToken.objects.get(token=crm.access_token).user == alice
    assert crm.get("me/").status_code == 200  # the demo API, with the team's token
    event = Event.objects.get(connection=connection, kind=EventKind.AUTHORIZED)
    assert event.owner_key == token.owner_key and event.owner is None

    # Another member of the team sees the team's grant; the other team has none.
    client.force_login(carol)
    row = client.get("/oauthconn/").content.decode()
    assert f'id="connection-crm-owner-{team_a.pk}"' in row and "Connected" in row
    with pytest.raises(NotConnected):
        get_connection("crm", owner=team_b).access_token


def test_a_teams_grant_costs_one_query(
    client, people, teams, make_connection, django_assert_num_queries
):
    alice, _, _ = people
    team_a, _ = teams
    connection = make_connection("crm", per_owner=True)
    client.force_login(alice)
    connect_team(client, connection, team_a)
    get_connection("crm", owner=team_a).access_token  # warms the per-process plan
    # SQLite: none while the database is unchanged (PRAGMA data_version); PostgreSQL: one
    with django_assert_num_queries(0 if default_db.vendor == "sqlite" else 1):
        assert get_connection("crm", owner=team_a).access_token


def test_disconnect_revokes_the_teams_grant_only(client, people, teams, make_connection):
    alice, bob, _ = people
    team_a, team_b = teams
    connection = make_connection("crm", per_owner=True)
    client.force_login(bob)
    connect_team(client, connection, team_b)
    client.force_login(alice)
    connect_team(client, connection, team_a)
    b_token = get_connection("crm", owner=team_b).access_token

    url = reverse("oauthconn:disconnect", args=["crm"])
    assert client.post(url, {"owner": team_a.pk}).status_code == 303
    assert not AccessToken.objects.filter(user=alice).exists()  # revoked at the provider
    with pytest.raises(NotConnected):
        get_connection("crm", owner=team_a).access_token
    assert get_connection("crm", owner=team_b).access_token == b_token


# --- isolation -----------------------------------------------------------------------------


def test_a_member_of_one_team_cannot_start_see_or_disconnect_anothers(
    client, people, teams, make_connection
):
    alice, bob, _ = people
    team_a, team_b = teams
    connection = make_connection("crm", per_owner=True)
    client.force_login(bob)
    connect_team(client, connection, team_b)
    before = list(Token.objects.values_list("pk", "access_token", "status"))

    client.force_login(alice)
    start_url = reverse("oauthconn:start", args=["crm"])
    assert client.post(start_url, {"owner": team_b.pk}).status_code == 403
    assert client.post(start_url).status_code == 403  # no team named
    assert client.post(start_url, {"owner": "x"}).status_code == 403
    assert not PendingAuthorization.objects.filter(user=alice).exists()
    disconnect_url = reverse("oauthconn:disconnect", args=["crm"])
    assert client.post(disconnect_url, {"owner": team_b.pk}).status_code == 403
    page = client.get("/oauthconn/").content.decode()
    assert "Team Blueberry" not in page and "Connected" not in page
    assert list(Token.objects.values_list("pk", "access_token", "status")) == before


def test_a_member_removed_mid_flow_cannot_complete_it(client, people, teams, make_connection):
    alice, _, _ = people
    team_a, _ = teams
    connection = make_connection("crm", per_owner=True)
    client.force_login(alice)
    query = consent(client, start(client, connection, owner=team_a.pk))
    team_a.members.remove(alice)

    page = outcome(client, deliver(client, connection, query))
    assert page.status_code == 403
    assert not Token.objects.exists()
    assert not AccessToken.objects.filter(user=alice).exists()  # the code was never redeemed
    # The attempt is used up: joining again does not make the same callback work.
    team_a.members.add(alice)
    assert outcome(client, deliver(client, connection, query)).status_code == 400
    assert not Token.objects.exists()


def test_a_callback_for_a_team_is_not_stored_for_the_user(client, people, teams, make_connection):
    """The attempt names the team; a per-user reading of it (owner None or the user) would
    store the grant for the wrong owner."""
    alice, _, _ = people
    team_a, _ = teams
    connection = make_connection("crm", per_owner=True)
    client.force_login(alice)
    connect_team(client, connection, team_a)
    assert not Token.objects.filter(owner=alice).exists()
    assert not Token.objects.filter(owner__isnull=True, owner_key="").exists()


@pytest.fixture
def team_oidc(make_connection, oidc_provider):
    """A per-owner connection with ID tokens, so a second account's consent is a switch."""
    connection = make_connection("idp", provider_=oidc_provider, scopes="openid", per_owner=True)
    Application.objects.filter(client_id=connection.client_id).update(algorithm="RS256")
    return connection


def switch_as_bob(client, people, team, connection) -> str:
    """alice's browser reauthorizes ``team``; bob consents at the provider: the switch page."""
    provider_browser = Client()
    provider_browser.force_login(people[1])
    query = consent(provider_browser, start(client, connection, owner=team.pk))
    response = deliver(client, connection, query)
    assert response["Location"].startswith("/oauthconn/switch/"), response["Location"]
    return response["Location"]


def test_a_teams_account_switch_is_stored_for_the_team(client, people, teams, team_oidc):
    alice, bob, _ = people
    team_a, _ = teams
    client.force_login(alice)
    connect_team(client, team_oidc, team_a)
    page = switch_as_bob(client, people, team_a, team_oidc)

    assert client.post(page, {"use_new": "1"})["Location"] == "/oauthconn/"
    token = Token.objects.get(connection=team_oidc)
    assert (token.owner_key, token.subject) == (owner_key(team_a), str(bob.pk))


def test_a_member_removed_before_confirming_a_switch_cannot_confirm_it(
    client, people, teams, team_oidc
):
    alice, _, _ = people
    team_a, _ = teams
    client.force_login(alice)
    connect_team(client, team_oidc, team_a)
    page = switch_as_bob(client, people, team_a, team_oidc)
    team_a.members.remove(alice)

    assert outcome(client, client.post(page, {"use_new": "1"})).status_code == 403
    token = Token.objects.get(connection=team_oidc)
    assert (token.owner_key, token.subject) == (owner_key(team_a), str(alice.pk))


# --- owners of the wrong kind ----------------------------------------------------------------


@pytest.fixture
def three_kinds(db):
    provider = Provider.objects.create(
        slug="p", name="P", token_endpoint="https://as.example.com/token"
    )

    def make(slug: str, **kind) -> Connection:
        return Connection.objects.create(slug=slug, name=slug, provider=provider, **kind)

    return make("shared"), make("mine", per_user=True), make("ours", per_owner=True)


def test_an_owner_of_the_wrong_kind_is_a_configuration_error(three_kinds, people, teams):
    alice, _, _ = people
    team_a, _ = teams
    cases = [
        ("ours", alice, "pass owner=<teams.Team>, not an instance of auth.User"),
        ("ours", None, "per-team connection: pass owner=<teams.Team>, not None"),
        ("ours", Project.objects.create(name="p"), "not an instance of teams.Project"),
        ("ours", Team(name="unsaved"), "is not saved"),
        ("ours", "Team Apricot", "must be a user or a model instance, not str"),
        ("mine", team_a, "per-user connection: pass owner=<user>, not an instance of teams"),
        ("shared", team_a, "shared connection: do not pass owner"),
    ]
    for slug, owner, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            get_connection(slug, owner=owner)
    assert not Token.objects.exists()


def test_the_flows_refuse_an_owner_of_the_wrong_kind(three_kinds, people, teams):
    from oauthconn import flows

    alice, _, _ = people
    team_a, _ = teams
    _, mine, ours = three_kinds
    with pytest.raises(ConfigurationError, match="per-user connection"):
        flows.disconnect_owner(mine, team_a)
    with pytest.raises(ConfigurationError, match="per-team connection"):
        flows.renew_now(ours, alice)
    assert not Token.objects.exists()


def test_without_an_owner_model_a_per_owner_connection_is_refused(three_kinds, teams, settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "OWNER_MODEL": None}
    with pytest.raises(ConfigurationError, match='OAUTHCONN\\["OWNER_MODEL"\\] is not set'):
        get_connection("ours", owner=teams[0])


def test_an_owner_model_that_does_not_exist_is_named(three_kinds, teams, settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "OWNER_MODEL": "teams.Nope"}
    with pytest.raises(ConfigurationError, match="'teams.Nope' is not an installed model"):
        get_connection("ours", owner=teams[0])


def test_a_team_and_a_user_with_the_same_pk_are_different_owners(three_kinds, people):
    alice, _, _ = people
    team = Team.objects.create(pk=alice.pk, name="Same pk as alice")
    _, mine, ours = three_kinds
    Token.objects.create(connection=ours, owner_key=owner_key(team))
    Token.objects.create(connection=mine, owner=alice)
    assert [t.connection for t in Token.objects.for_owner(team)] == [ours]
    assert [t.connection for t in Token.objects.for_owner(alice)] == [mine]
    assert not Token.objects.for_owner(None).exists()


# --- the REST API --------------------------------------------------------------------------


def test_api_lists_connects_and_disconnects_a_teams_grant_only_for_members(
    client, people, teams, make_connection
):
    alice, bob, _ = people
    team_a, team_b = teams
    connection = make_connection("crm", per_owner=True)
    make_connection("drive", per_user=True)
    client.force_login(bob)
    connect_team(client, connection, team_b)

    client.force_login(alice)
    assert [c["slug"] for c in client.get(ME).json()["results"]] == ["drive"]
    listed = client.get(ME, {"owner": team_a.pk}).json()["results"]
    assert [(c["slug"], c["owner"]["name"], c["token"]) for c in listed] == [
        ("crm", "Team Apricot", None)
    ]
    assert client.get(ME, {"owner": team_b.pk}).status_code == 403
    assert client.post(f"{ME}crm/disconnect/?owner={team_b.pk}").status_code == 403
    assert client.post(f"{ME}crm/connect/?owner={team_b.pk}").status_code == 403

    started = client.post(f"{ME}crm/connect/?owner={team_a.pk}").json()
    deliver(client, connection, consent(client, started["authorization_url"]))
    mine = client.get(f"{ME}crm/", {"owner": team_a.pk}).json()
    assert mine["token"]["connected"] is True
    assert "access_token" not in str(mine)
    result = client.post(f"{ME}crm/disconnect/?owner={team_a.pk}")
    assert result.status_code == 200 and result.json()["revoked_at_provider"] is True
    assert get_connection("crm", owner=team_b).access_token  # the other team's grant stays


def test_staff_api_shows_no_teams_grant(client, people, teams, make_connection, staff):
    _, bob, _ = people
    _, team_b = teams
    connection = make_connection("crm", per_owner=True)
    client.force_login(bob)
    connect_team(client, connection, team_b)
    client.force_login(staff)
    listed = client.get("/api/oauthconn/connections/").json()["results"]
    assert [(c["slug"], c["per_owner"], c["token"]) for c in listed] == [("crm", True, None)]
    connected = client.get("/api/oauthconn/connections/", {"status": "active"}).json()
    assert connected["results"] == []
    refused = client.post(f"/api/oauthconn/connections/{connection.pk}/disconnect/")
    assert refused.status_code == 403
    assert get_connection("crm", owner=team_b).access_token


def test_api_refuses_a_connection_both_per_user_and_per_owner(staff_client, three_kinds):
    _, mine, _ = three_kinds
    response = staff_client.patch(
        f"/api/oauthconn/connections/{mine.pk}/",
        {"per_owner": True},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "per-user or per-owner" in str(response.json())
    assert Connection.objects.get(pk=mine.pk).per_owner is False


# --- the admin -----------------------------------------------------------------------------


def test_admin_page_of_a_per_owner_connection_lists_owners_by_name(
    client, people, teams, make_connection, staff
):
    _, bob, _ = people
    _, team_b = teams
    connection = make_connection("crm", per_owner=True)
    client.force_login(bob)
    connect_team(client, connection, team_b)
    client.force_login(staff)
    page = client.get(reverse("admin:oauthconn_connection_change", args=[connection.pk]))
    text = page.content.decode()
    assert "Per-owner connection" in text and "<td>Team Blueberry</td>" in text
    # The shared-grant buttons are not offered: a team's grant is its members' to manage.
    assert reverse("oauthconn:start", args=["crm"]) not in text


# --- the migration -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_carries_existing_grants_unchanged():
    """Rows written before 0011 keep their meaning: shared stays shared, per-user grants stay
    their users', nothing becomes per-owner; and a team's grant fits beside them after it."""
    with migrated_back_to("0014_par_and_registration") as old:
        user = old.get_model("auth", "User").objects.create(username="old-user")
        provider, conn, tokens = provider_and_managers(old)
        shared = conn.create(slug="shared", name="S", provider=provider, client_id="c")
        mine = conn.create(slug="mine", name="M", provider=provider, client_id="c", per_user=True)
        tokens.create(connection=shared, access_token="shared-at")
        tokens.create(connection=mine, owner=user, access_token="user-at")

        new = migrate_to("0015_teams_owner_key")
        rows = new.get_model("oauthconn", "Token").objects.order_by("connection__slug")
        assert [(t.connection.slug, t.owner_id, t.owner_key) for t in rows] == [
            ("mine", user.pk, ""),
            ("shared", None, ""),
        ]
        assert [(t.access_token.reveal()) for t in rows] == ["user-at", "shared-at"]
        kinds = new.get_model("oauthconn", "Connection").objects.order_by("slug")
        assert [(c.slug, c.per_user, c.per_owner) for c in kinds] == [
            ("mine", True, False),
            ("shared", False, False),
        ]
    # With the current models: the migrated rows serve as before, beside a team's grant.
    team = Team.objects.create(name="T")
    ours = Connection.objects.create(
        slug="ours", name="O", provider=Provider.objects.get(slug="p"), per_owner=True
    )
    Token.objects.create(connection=ours, owner_key=owner_key(team))
    assert Token.objects.for_owner(None).get().connection.slug == "shared"
    assert Token.objects.for_owner(team).get().connection.slug == "ours"


def test_the_wizard_offers_per_team_only_on_a_site_with_an_owner_model(db, settings):
    from oauthconn.admin.wizard_forms import BasicsForm

    def kinds() -> list:
        return list(BasicsForm().fields["sharing"].choices)

    assert kinds()[-1] == ("per_owner", "Per team: each team connects its own")
    settings.OAUTHCONN = {**settings.OAUTHCONN, "OWNER_MODEL": None}
    assert [value for value, _ in kinds()] == ["shared", "per_user"]


def test_owner_settings_are_checked(settings):
    from django.core import checks

    from oauthconn.checks import check_owner_settings

    assert check_owner_settings() == []
    resolver_hint = (
        "Name a callable (user) -> the owners that user may act for, as an import string."
    )
    cases = [
        (
            {"OWNER_MODEL": "teams.Nope"},
            "OAUTHCONN[\"OWNER_MODEL\"] = 'teams.Nope' is not an installed model "
            '("app_label.ModelName").',
            'Name a model as "app_label.ModelName".',
        ),
        (
            {"OWNER_RESOLVER": None},
            'OAUTHCONN["OWNER_MODEL"] is set but OWNER_RESOLVER is not.',
            resolver_hint,
        ),
        (
            {"OWNER_RESOLVER": "tests.teams.models.nope"},
            "OAUTHCONN[\"OWNER_RESOLVER\"] = 'tests.teams.models.nope': Module "
            '"tests.teams.models" does not define a "nope" attribute/class',
            resolver_hint,
        ),
    ]
    base = settings.OAUTHCONN
    for changed, message, hint in cases:
        settings.OAUTHCONN = {**base, **changed}
        assert check_owner_settings() == [checks.Error(message, hint=hint, id="oauthconn.E012")]
    settings.OAUTHCONN = {**base, "OWNER_MODEL": None, "OWNER_RESOLVER": None}
    assert check_owner_settings() == []


def test_a_teams_notification_names_the_team(three_kinds, teams):
    from oauthconn.notifications.delivery import email_text
    from oauthconn.notifications.outbox import build_payload

    _, _, ours = three_kinds
    token = Token.objects.create(connection=ours, owner_key=owner_key(teams[0]))
    event = Event.objects.create(
        connection=ours, token=token, owner_key=token.owner_key, kind=EventKind.REVOKED
    )
    payload = build_payload(event, "revoked")
    assert (payload["owner_id"], payload["owner_key"]) == (None, f"teams.team:{teams[0].pk}")
    assert f"Owner: teams.team:{teams[0].pk}\n" in email_text(payload)[1]


def test_the_change_form_offers_per_owner_with_an_owner_model_and_refuses_both(
    three_kinds, settings
):
    from oauthconn.admin.forms import ConnectionForm

    _, mine, _ = three_kinds
    data = {**ConnectionForm(instance=mine).initial, "per_owner": True}
    form = ConnectionForm(data, instance=mine)
    assert not form.is_valid()
    assert "A connection is per-user or per-owner, not both." in str(form.errors)
    assert Connection.objects.get(pk=mine.pk).per_owner is False
    settings.OAUTHCONN = {**settings.OAUTHCONN, "OWNER_MODEL": None}
    assert "per_owner" not in ConnectionForm(instance=Connection.objects.get(pk=mine.pk)).fields


# --- asking for more scopes for a team's grant -------------------------------------------------


def test_a_member_upgrades_the_team_grant_and_another_team_cannot(
    client, people, teams, make_connection
):
    alice, bob, carol = people
    team_a, team_b = teams
    connection = make_connection("crm", per_owner=True, scopes="read", optional_scopes="write")
    client.force_login(alice)
    connect_team(client, connection, team_a)
    with pytest.raises(ScopesRequired) as raised:
        get_connection("crm", owner=team_a).require_scopes(["write"])
    path = raised.value.authorize_url
    assert path == f"/oauthconn/scopes/crm/?scope=write&owner={team_a.pk}"
    page = client.get("/oauthconn/")
    assert f'name="owner" value="{team_a.pk}"'.encode() in page.content

    outsider = Client()
    outsider.force_login(bob)  # team B only: the page and its POST refuse team A's grant
    assert outsider.get(path).status_code == 403
    refused = outsider.post("/oauthconn/scopes/crm/", {"scope": "write", "owner": team_a.pk})
    assert refused.status_code == 403
    assert not PendingAuthorization.objects.filter(consumed_at__isnull=True).exists()

    question = client.get(path)
    assert question.status_code == 200
    assert f'name="owner" value="{team_a.pk}"'.encode() in question.content
    started = client.post("/oauthconn/scopes/crm/", {"scope": "write", "owner": team_a.pk})
    deliver(client, connection, consent(client, started["Location"]))

    grant = Token.objects.get(connection=connection, owner_key=owner_key(team_a))
    assert grant.scope == "read write"
    get_connection("crm", owner=team_a).require_scopes(["write"])


@pytest.mark.parametrize(
    ("kind", "kept"),
    [({}, "shared"), ({"per_user": True}, "user"), ({"per_owner": True}, "team")],
    ids=["to-shared", "to-per-user", "to-per-team"],
)
def test_a_switch_of_kind_removes_the_rows_the_new_kind_cannot_reach(
    db, django_user_model, kind, kept
):
    from oauthconn.flows import end_stranded_grants

    provider = Provider.objects.create(slug="p", name="P", token_endpoint="https://p.test/t")
    connection = Connection.objects.create(slug="k", name="K", provider=provider, **kind)
    user = django_user_model.objects.create_user("u")
    rows = {
        "shared": Token.objects.create(connection=connection),
        "user": Token.objects.create(connection=connection, owner=user),
        "team": Token.objects.create(
            connection=connection, owner_key=owner_key(Team.objects.create(name="T"))
        ),
    }

    assert end_stranded_grants(connection) == []  # nothing held a credential to revoke

    assert list(connection.tokens.values_list("pk", flat=True)) == [rows[kept].pk]


@pytest.mark.parametrize("kind", ["shared", "per-user"])
def test_the_connection_page_opens_and_saves_on_a_site_without_teams(
    three_kinds, settings, admin_client, kind
):
    """The admin lays out the form class's fields: without an OWNER_MODEL the page must not
    ask for the per-owner checkbox the form leaves out (it failed with a KeyError)."""
    from tests.test_admin_pages import change_data

    settings.OAUTHCONN = {**settings.OAUTHCONN, "OWNER_MODEL": None}
    connection = three_kinds[0 if kind == "shared" else 1]
    page = reverse("admin:oauthconn_connection_change", args=[connection.pk])
    response = admin_client.get(page)
    assert response.status_code == 200
    assert 'name="per_user"' in response.content.decode()
    assert 'name="per_owner"' not in response.content.decode()
    data = change_data(
        connection,
        name="Renamed",
        client_id="cid",
        new_client_secret="secret",
        per_user="on" if connection.per_user else "",
    )
    saved = admin_client.post(page, data)
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    assert Connection.objects.get(pk=connection.pk).name == "Renamed"

"""The API's ``?status=not_connected``: the connections where the caller has no grant row.

It is asked one of three ways, chosen by how many connections match (``api.queries``), plus an
anti-join on databases without the triggers of ``Connection.shared_grants``. Every way must
list the same connections, and the count found with the matches is not counted again.
"""

from __future__ import annotations

from importlib import import_module

import pytest
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from oauthconn import paging
from oauthconn.api import queries
from oauthconn.models import Connection, Token, TokenStatus
from tests.migrations import (
    migrate_to,
    migrated_back_to,
    provider_and_managers,
    token_table_triggers,
)

API = "/api/oauthconn"
migration = import_module("oauthconn.migrations.0021_scale_connection_shared_grants")


@pytest.fixture
def landscape(provider, admin_user, django_user_model):
    """Connections of every kind, with and without the caller's grant row."""
    other = django_user_model.objects.create_user("other")

    def make(slug: str, **kind) -> Connection:
        return Connection.objects.create(slug=slug, name=slug, provider=provider, **kind)

    Token.objects.create(connection=make("shared-connected"), access_token="at")
    Token.objects.create(connection=make("shared-revoked"), status=TokenStatus.REVOKED)
    make("shared-without-grant")
    # A row of another kind left on a shared connection is not its shared grant.
    Token.objects.create(connection=make("shared-with-a-stray-row"), owner=other)
    make("team", per_owner=True)
    Token.objects.create(connection=make("mine", per_user=True), owner=admin_user)
    Token.objects.create(connection=make("theirs-only", per_user=True), owner=other)
    make("nobodys", per_user=True)
    return {"shared-without-grant", "shared-with-a-stray-row", "team", "theirs-only", "nobodys"}


def listed(admin_user) -> tuple[int, list[str]]:
    client = APIClient()
    client.force_login(admin_user)
    page = client.get(f"{API}/connections/?status=not_connected&page_size=500").json()
    return page["count"], [c["slug"] for c in page["results"]]


WAYS = {
    "by-ids": (queries, "INLINE_IDS_UP_TO", 1000),
    "by-subquery": (queries, "INLINE_IDS_UP_TO", 0),
    # (past the exact count, the count is PostgreSQL's estimate: not compared)
    "along-the-name-index": (paging, "EXACT_UP_TO", 0),
}


@pytest.mark.parametrize("way", WAYS)
def test_every_way_of_asking_lists_the_same_connections(way, landscape, admin_user, monkeypatch):
    module, name, value = WAYS[way]
    monkeypatch.setattr(module, name, value)
    count, slugs = listed(admin_user)
    assert slugs == sorted(landscape)
    assert count == len(landscape) or module is paging


def test_without_the_triggers_the_anti_join_lists_the_same(landscape, admin_user, monkeypatch):
    monkeypatch.setattr(queries, "keeps_grant_counts", lambda alias: False)
    assert listed(admin_user) == (len(landscape), sorted(landscape))


def test_the_matches_found_are_not_counted_again(landscape, admin_user):
    with CaptureQueriesContext(db_connection) as captured:
        assert listed(admin_user)[0] == len(landscape)
    counts = [q["sql"] for q in captured if q["sql"].startswith("SELECT COUNT(*)")]
    assert counts == []


def test_a_count_past_the_exact_bound_is_not_taken_as_known(provider):
    with pytest.raises(ValueError):
        paging.with_known_count(Connection.objects.all(), paging.EXACT_UP_TO + 1)


def shared_grants(connection: Connection) -> int:
    kept = Connection.objects.values_list("shared_grants", flat=True).get(pk=connection.pk)
    in_fact = Token.objects.filter(connection=connection, owner=None, owner_key="").count()
    assert kept == in_fact
    return kept


def test_the_shared_grant_count_follows_every_write(provider, django_user_model):
    user = django_user_model.objects.create_user("u")
    crm = Connection.objects.create(slug="crm", name="CRM", provider=provider)
    other = Connection.objects.create(slug="o", name="O", provider=provider)
    grant = Token.objects.create(connection=crm)
    assert shared_grants(crm) == 1
    grant.access_token = "at"  # a change of anything else does not move it
    grant.save()
    assert shared_grants(crm) == 1

    Token.objects.filter(pk=grant.pk).update(owner=user)  # now a user's row
    assert shared_grants(crm) == 0
    Token.objects.filter(pk=grant.pk).update(owner=None, owner_key="team:1")  # a team's
    assert shared_grants(crm) == 0
    with db_connection.cursor() as cursor:
        cursor.execute("UPDATE oauthconn_token SET owner_key = '' WHERE id = %s", [grant.pk])
    assert shared_grants(crm) == 1
    Token.objects.filter(pk=grant.pk).update(connection=other)
    assert (shared_grants(crm), shared_grants(other)) == (0, 1)

    Token.objects.all().delete()
    assert (shared_grants(crm), shared_grants(other)) == (0, 0)


def test_saving_a_connection_does_not_write_back_a_stale_shared_count(provider):
    crm = Connection.objects.create(slug="crm", name="CRM", provider=provider)
    stale = Connection.objects.get(pk=crm.pk)
    Token.objects.create(connection=crm)
    stale.name = "CRM (renamed)"
    stale.save()
    assert shared_grants(crm) == 1


def test_the_triggers_of_both_counts_are_in_place(db):
    vendor = db_connection.vendor
    keeping = import_module("oauthconn.migrations.0022_grant_counts_per_statement")
    assert set(keeping.TRIGGERS[vendor]) <= token_table_triggers()
    if vendor == "sqlite":
        assert {*migration.TRIGGERS[vendor], *migration.HELD.triggers[vendor]} <= set(
            keeping.TRIGGERS[vendor]
        )


@pytest.mark.django_db(transaction=True)
def test_the_migration_counts_the_shared_grants_and_keeps_the_held_count_working():
    """On SQLite the migration rebuilds the connection table, around 0019's triggers."""
    with migrated_back_to("0020_lookup_grant_versions") as old:
        provider, conn, tokens = provider_and_managers(old)
        tokens.create(connection=conn.create(slug="granted", name="G", provider=provider))
        conn.create(slug="bare", name="B", provider=provider)

        migrate_to("0021_scale_connection_shared_grants")
    counts = dict(Connection.objects.values_list("slug", "shared_grants"))
    assert counts == {"granted": 1, "bare": 0}
    bare = Connection.objects.get(slug="bare")
    Token.objects.create(connection=bare, access_token="at")  # both counts' triggers fire
    assert Connection.objects.values_list("shared_grants", "held_grants").get(pk=bare.pk) == (
        1,
        1,
    )

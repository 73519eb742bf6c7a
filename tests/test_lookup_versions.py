"""PostgreSQL: the lookup's version check runs in PL/pgSQL functions (migration 0020).

They must answer exactly as the join they replace (each tuple's ``xmin`` and ``ctid``, the
token's NULL when the owner has no row), for each kind of owner, before and after a write;
and the migration must create and drop them.
"""

from __future__ import annotations

from importlib import import_module

import pytest
from django.db import connection as db_connection

from oauthconn.models import Connection, Provider, Token
from tests.migrations import migrated_back_to

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

migration = import_module("oauthconn.migrations.0020_lookup_grant_versions")

JOIN = (
    "SELECT c.xmin::text, c.ctid::text, p.xmin::text, p.ctid::text, t.xmin::text, t.ctid::text"
    " FROM oauthconn_connection c JOIN oauthconn_provider p ON c.provider_id = p.id"
    " LEFT JOIN oauthconn_token t ON t.connection_id = c.id AND {owner} WHERE c.slug = %s"
)
OWNERS = {
    "oauthconn_grant_versions_shared": "t.owner_id IS NULL AND t.owner_key = ''",
    "oauthconn_grant_versions_owned": "t.owner_id = %s",
    "oauthconn_grant_versions_keyed": "t.owner_id IS NULL AND t.owner_key = %s",
}


def both(function: str, params: list) -> tuple[tuple, tuple]:
    """What the function and the join it replaces answer."""
    with db_connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {function}({', '.join(['%s'] * len(params))})", params)
        answered = cursor.fetchall()
        cursor.execute(JOIN.format(owner=OWNERS[function]), params)
        expected = cursor.fetchall()
    assert len(answered) == len(expected) <= 1
    return (answered[0] if answered else ()), (expected[0] if expected else ())


@pytest.fixture
def grants(django_user_model):
    provider = Provider.objects.create(slug="p", name="P", token_endpoint="https://p.example/t")
    make = Connection.objects.create
    shared = make(slug="shared", name="S", provider=provider, client_id="c")
    mine = make(slug="mine", name="M", provider=provider, client_id="c", per_user=True)
    teams = make(slug="teams", name="T", provider=provider, client_id="c", per_owner=True)
    user = django_user_model.objects.create_user("u")
    Token.objects.create(connection=shared, access_token="a")
    Token.objects.create(connection=mine, owner=user, access_token="a")
    Token.objects.create(connection=teams, owner_key="team:1", access_token="a")
    return {
        "oauthconn_grant_versions_shared": ["shared"],
        "oauthconn_grant_versions_owned": [user.pk, "mine"],
        "oauthconn_grant_versions_keyed": ["team:1", "teams"],
    }


@pytest.mark.parametrize("function", list(OWNERS))
def test_each_function_answers_as_the_join_it_replaces(grants, function):
    params = grants[function]
    answered, expected = both(function, params)
    assert answered == expected and answered[4] is not None  # the grant's tuple is there
    before = answered

    slug = params[-1]
    Token.objects.filter(connection__slug=slug).update(access_token="b")
    answered, expected = both(function, params)
    assert answered == expected
    assert answered[4:] != before[4:] and answered[:4] == before[:4]  # a new token tuple

    Provider.objects.update(name="Q")
    answered, expected = both(function, params)
    assert answered == expected and answered[2:4] != before[2:4]


@pytest.mark.parametrize("function", list(OWNERS))
def test_an_owner_without_a_row_and_an_unknown_slug(grants, function):
    params = grants[function]
    Token.objects.filter(connection__slug=params[-1]).delete()
    answered, expected = both(function, params)
    assert answered == expected and answered[4:] == (None, None)

    answered, expected = both(function, [*params[:-1], "no-such-slug"])
    assert answered == expected == ()


def test_the_migration_creates_and_drops_the_functions():
    def present() -> set[str]:
        with db_connection.cursor() as cursor:
            cursor.execute(
                "SELECT proname FROM pg_proc WHERE proname LIKE 'oauthconn_grant_versions_%%'"
            )
            return {row[0] for row in cursor.fetchall()}

    assert present() == set(migration.FUNCTIONS)
    with migrated_back_to("0019_scale_connection_held_grants"):
        assert present() == set()
    assert present() == set(migration.FUNCTIONS)

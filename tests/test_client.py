"""``oauthconn.client``: what tests/test_client_live.py does not already cover.

There: the one-query valid token, refresh and rotation, the 401 retry, ``ConnectionNotFound``
/ ``NotConnected`` / the owner ``ConfigurationError`` in one test, and a sync request to
another host or port refused. Here: per-owner lookups, the readable messages, the API base
URL's own rules, and the origin rule for the other ways of sending (another scheme, the bound
client, the async client), with a real server standing in for the other origin that must
never see a request. Tokens come from django-oauth-toolkit over real HTTP, and for the
per-owner lookups from the test kit's fake provider (oauthconn.testing).
"""

from __future__ import annotations

import asyncio

import pytest

from oauthconn import get_connection
from oauthconn.exceptions import (
    ConfigurationError,
    ConnectionNotFound,
    DisallowedResourceURL,
    InsecureURL,
    NotConnected,
)
from oauthconn.models import Connection, Token, TokenStatus
from tests.conftest import authorize
from tests.scripted_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def connected(staff_client, make_connection, as_log):
    connection = make_connection()
    authorize(staff_client, connection)
    as_log.clear()
    return connection


# --- get_connection: lookups and their errors -----------------------------------------------


def test_an_unknown_slug_is_connection_not_found_with_the_slug_named(db):
    with pytest.raises(ConnectionNotFound, match="'nope'") as caught:
        get_connection("nope")
    assert isinstance(caught.value, LookupError)


def test_a_per_user_connection_serves_each_owner_their_own_grant(
    oauthconn_provider, django_user_model
):
    # Real grants from the test kit's fake provider: each owner's token reaches the API as
    # that owner's account, not only as that owner's row.
    alice = django_user_model.objects.create_user("alice")
    bob = django_user_model.objects.create_user("bob")
    for user in (alice, bob):
        oauthconn_provider.connect("drive", owner=user, subject=f"{user}-account")

    assert get_connection("drive", owner=alice).get("me").json()["sub"] == "alice-account"
    assert get_connection("drive", owner=bob).get("me").json()["sub"] == "bob-account"
    tokens = {get_connection("drive", owner=user).access_token for user in (alice, bob)}
    assert len(tokens) == 2


def test_an_owner_without_a_grant_is_not_connected(oauthconn_provider, django_user_model):
    oauthconn_provider.connect("drive", owner=django_user_model.objects.create_user("bob"))
    alice = django_user_model.objects.create_user("alice")
    with pytest.raises(NotConnected):
        get_connection("drive", owner=alice).access_token


def test_owner_mistakes_are_configuration_errors_that_say_what_to_do(
    make_connection, django_user_model
):
    make_connection("drive", per_user=True)
    make_connection("crm")
    with pytest.raises(ConfigurationError, match="per-user connection: pass owner=<user>"):
        get_connection("drive")
    user = django_user_model.objects.create_user("alice")
    with pytest.raises(ConfigurationError, match="shared connection: do not pass owner"):
        get_connection("crm", owner=user)


def test_a_disconnected_grant_is_not_connected(connected):
    Token.objects.filter(connection=connected).update(status=TokenStatus.REVOKED)
    with pytest.raises(NotConnected):
        get_connection("crm").access_token


# --- the API base URL -------------------------------------------------------------------------


def test_without_an_api_base_url_requests_are_a_configuration_error(connected):
    Connection.objects.filter(pk=connected.pk).update(api_base_url="")
    crm = get_connection("crm")
    with pytest.raises(ConfigurationError, match="'crm' has no API base URL"):
        crm.get("me/")
    assert crm.access_token  # the token itself is still served


def test_an_insecure_api_base_url_is_refused_before_any_request(connected, as_log):
    Connection.objects.filter(pk=connected.pk).update(api_base_url="http://api.example/")
    with pytest.raises(InsecureURL):
        get_connection("crm").get("me/")
    assert as_log.requests == []


def test_a_base_url_without_trailing_slash_still_prefixes_relative_paths(connected, as_log):
    base = connected.api_base_url.rstrip("/")  # .../demo-api
    Connection.objects.filter(pk=connected.pk).update(api_base_url=base)
    assert get_connection("crm").get("me/").json() == {"username": "staff"}
    assert len(as_log.to("/demo-api/me/")) == 1


# --- the origin rule (DisallowedResourceURL) -------------------------------------------------


@pytest.fixture
def elsewhere(scripted_server):
    """Another origin that would answer: it must never receive the token."""
    scripted_server.default("/steal", Reply(body={"stolen": True}))
    return scripted_server


def test_another_scheme_on_the_same_host_and_port_is_refused(connected, live_server):
    https_twin = live_server.url.replace("http://", "https://", 1) + "/demo-api/me/"
    with pytest.raises(DisallowedResourceURL, match="only its API base URL's origin"):
        get_connection("crm").get(https_twin)


def test_the_bound_client_refuses_another_origin(connected, elsewhere):
    with get_connection("crm").client() as http:
        with pytest.raises(DisallowedResourceURL):
            http.get(elsewhere.url("/steal"))
        assert http.get("me/").status_code == 200  # the refusal did not break the client
    assert elsewhere.requests == []


def test_the_async_client_refuses_another_origin(connected, elsewhere):
    crm = get_connection("crm")

    async def steal():
        async with crm.async_client() as http:
            await http.get(elsewhere.url("/steal"))

    with pytest.raises(DisallowedResourceURL):
        asyncio.run(steal())
    assert elsewhere.requests == []


def test_the_refusal_names_the_connection_but_not_the_token(connected, elsewhere):
    crm = get_connection("crm")
    with pytest.raises(DisallowedResourceURL) as caught:
        crm.get(elsewhere.url("/steal"))
    assert "'crm'" in str(caught.value) and "127.0.0.1" in str(caught.value)
    assert crm.access_token not in str(caught.value)

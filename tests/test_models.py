"""The models on their own: Token's state predicates and querysets, Connection's derived values.

The flows and edges exercise these through real authorization servers elsewhere; here each
rule is pinned down at its edges (boundaries, unknown values) without the network.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from oauthconn.models import (
    Connection,
    GrantType,
    PendingAuthorization,
    Provider,
    Token,
    TokenStatus,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now()


@pytest.fixture
def provider() -> Provider:
    return Provider.objects.create(
        slug="as",
        name="AS",
        authorization_endpoint="https://as.example/authorize",
        token_endpoint="https://as.example/token",
    )


@pytest.fixture
def connection(provider) -> Connection:
    return Connection.objects.create(slug="crm", name="CRM", provider=provider, client_id="c")


# --- Token: state predicates --------------------------------------------------------------


@pytest.mark.parametrize(
    ("access_token", "status", "connected"),
    [
        ("a", TokenStatus.ACTIVE, True),
        ("a", TokenStatus.FAILING, True),
        ("a", TokenStatus.NEEDS_REAUTH, True),  # still holds a grant, just cannot renew it
        ("a", TokenStatus.REVOKED, False),
        (None, TokenStatus.ACTIVE, False),
    ],
)
def test_is_connected(connection, access_token, status, connected):
    token = Token.objects.create(connection=connection, access_token=access_token, status=status)
    assert Token.objects.get(pk=token.pk).is_connected is connected


@pytest.mark.parametrize(
    ("access_token", "refresh_token", "status", "usable", "never_fetched", "holds"),
    [
        ("a", "r", TokenStatus.ACTIVE, True, False, True),
        ("a", None, TokenStatus.FAILING, True, False, True),  # served while still valid
        ("a", "r", TokenStatus.NEEDS_REAUTH, False, False, True),  # kept, revocable
        (None, "r", TokenStatus.ACTIVE, False, True, True),
        (None, None, TokenStatus.ACTIVE, False, True, False),
        (None, None, TokenStatus.FAILING, False, True, False),
        (None, None, TokenStatus.NEEDS_REAUTH, False, False, False),
        (None, None, TokenStatus.REVOKED, False, False, False),
    ],
)
def test_state_predicates(
    connection, access_token, refresh_token, status, usable, never_fetched, holds
):
    token = Token.objects.create(
        connection=connection, access_token=access_token, refresh_token=refresh_token, status=status
    )
    token = Token.objects.get(pk=token.pk)
    assert (token.is_usable, token.never_fetched, token.holds_credentials) == (
        usable,
        never_fetched,
        holds,
    )
    assert Token.objects.holding_credentials().filter(pk=token.pk).exists() is holds
    assert Token.objects.usable().filter(pk=token.pk).exists() is usable


def test_expires_within_at_its_boundaries(connection):
    token = Token(connection=connection, expires_at=NOW + timedelta(seconds=60))
    assert token.expires_within(60, now=NOW)  # exactly at the leeway counts as due
    assert not token.expires_within(59, now=NOW)
    assert token.expires_within(0, now=NOW + timedelta(seconds=60))  # the moment it expires
    assert not token.expires_within(0, now=NOW + timedelta(seconds=59))


def test_an_unknown_expiry_is_never_due(connection):
    token = Token(connection=connection, expires_at=None)
    assert not token.expires_within(10**9, now=NOW)


def test_expires_within_reads_the_clock_when_no_now_is_given(connection):
    assert Token(connection=connection, expires_at=timezone.now()).expires_within(1)
    later = timezone.now() + timedelta(hours=1)
    assert not Token(connection=connection, expires_at=later).expires_within(60)


def test_granted_scopes_and_has_scope(connection):
    token = Token(connection=connection, scope="read  write\tadmin:org")
    assert token.granted_scopes == ["read", "write", "admin:org"]
    assert token.has_scope("admin:org")
    assert not token.has_scope("admin")  # whole scopes only, never a prefix
    assert Token(connection=connection).granted_scopes == []


def test_clear_credentials_forgets_every_token_value(connection):
    token = Token.objects.create(
        connection=connection,
        access_token="a",
        refresh_token="r",
        id_token="i",
        expires_at=NOW,
        refresh_expires_at=NOW,
        next_attempt_at=NOW,
        scope="read",
    )
    token.clear_credentials()
    token.save()
    token = Token.objects.get(pk=token.pk)
    assert (token.access_token, token.refresh_token, token.id_token) == (None, None, None)
    assert (token.expires_at, token.refresh_expires_at, token.next_attempt_at) == (None,) * 3
    assert token.scope == "read" and token.status == TokenStatus.ACTIVE  # left to the caller


# --- querysets ----------------------------------------------------------------------------


def test_for_owner_separates_the_shared_grant_from_each_users(connection, django_user_model):
    alice = django_user_model.objects.create_user("alice")
    bob = django_user_model.objects.create_user("bob")
    shared = Token.objects.create(connection=connection)
    mine = Token.objects.create(connection=connection, owner=alice)
    Token.objects.create(connection=connection, owner=bob)

    assert list(Token.objects.for_owner(None)) == [shared]
    assert list(Token.objects.for_owner(alice)) == [mine]
    assert Token.objects.filter(connection=connection).for_owner(bob).get().owner == bob


def test_pending_authorizations_expired(connection, django_user_model):
    user = django_user_model.objects.create_user("alice")

    def pending(state: str, expires_at) -> PendingAuthorization:
        return PendingAuthorization.objects.create(
            state_hash=PendingAuthorization.hash(state),
            browser_hash="b",
            connection=connection,
            user=user,
            redirect_uri=connection.redirect_uri,
            expires_at=expires_at,
        )

    old = pending("old", NOW - timedelta(seconds=1))
    edge = pending("edge", NOW)
    pending("fresh", NOW + timedelta(days=1))  # still live however slowly the run gets here

    assert set(PendingAuthorization.objects.expired(now=NOW)) == {old, edge}
    assert set(PendingAuthorization.objects.expired()) == {old, edge}


# --- Connection: derived values -----------------------------------------------------------


@pytest.mark.parametrize(
    ("grant_type", "browser", "pkce"),
    [
        (GrantType.AUTHORIZATION_CODE, True, False),
        (GrantType.AUTHORIZATION_CODE_PKCE, True, True),
        (GrantType.CLIENT_CREDENTIALS, False, False),
    ],
)
def test_grant_type_predicates(grant_type, browser, pkce):
    connection = Connection(slug="x", grant_type=grant_type)
    assert (connection.uses_browser, connection.uses_pkce) == (browser, pkce)


def test_scope_list_and_the_providers_separator(connection, provider):
    connection.scopes = " read  write\n"
    assert connection.scope_list == ["read", "write"]
    assert connection.scope_string == "read write"
    provider.scope_separator = ","
    assert connection.scope_string == "read,write"
    connection.scopes = ""
    assert connection.scope_list == [] and connection.scope_string == ""


def test_redirect_uri_is_built_from_settings_at_call_time(settings):
    connection = Connection(slug="crm")
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REDIRECT_BASE_URL": "https://app.example/"}
    assert connection.redirect_uri == "https://app.example/oauthconn/callback/crm/"
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REDIRECT_BASE_URL": "https://other.example"}
    assert connection.redirect_uri == "https://other.example/oauthconn/callback/crm/"


def test_str_names_the_connection_and_the_owner(connection, django_user_model):
    alice = django_user_model.objects.create_user("alice")
    assert str(connection) == "CRM"
    assert str(Token(connection=connection)) == "CRM"
    assert str(Token(connection=connection, owner=alice)) == "CRM for alice"

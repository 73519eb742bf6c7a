"""store_grant (issue 14 item 5): the new grant, its audit text and the recovered event.

The code exchange itself is covered live (test_authorization_live.py); here the token
response is given, so each piece of the audit text can be checked on its own.
"""

from __future__ import annotations

import pytest

from oauthconn.flows.grants import authorized_message, store_grant
from oauthconn.flows.identity import Identity
from oauthconn.models import Connection, Event, EventKind, Provider, Token, TokenStatus
from oauthconn.oauth.token_response import TokenSet

pytestmark = pytest.mark.django_db


@pytest.fixture
def connection() -> Connection:
    provider = Provider.objects.create(slug="p", name="P", token_endpoint="https://as.example/t")
    return Connection.objects.create(
        slug="crm", name="CRM", provider=provider, client_id="c", scopes="read write"
    )


def tokens(scope: str | None) -> TokenSet:
    return TokenSet("at", "Bearer", None, "rt", None, scope, None)


def messages(kind: str) -> list[str]:
    return list(Event.objects.filter(kind=kind).order_by("pk").values_list("message", flat=True))


def test_the_audit_text_names_what_was_not_granted_and_a_changed_account(connection):
    token = Token(connection=connection, scope="read")
    assert authorized_message(connection, token) == "Authorized. Scopes not granted: write."
    token.scope, token.subject = "write read", "bob"
    assert authorized_message(connection, token) == "Authorized."
    assert authorized_message(connection, token, before="subject alice") == (
        "Authorized. The account changed from subject alice to subject bob."
    )


def test_a_first_grant_is_stored_and_audited(connection):
    token = store_grant(connection, tokens("read"), identity=Identity("alice", {"name": "A"}))

    token.refresh_from_db()
    assert token.access_token.reveal() == "at" and token.refresh_token.reveal() == "rt"
    assert token.status == TokenStatus.ACTIVE and token.subject == "alice"
    assert token.authorized_at is not None and token.refreshed_at is None
    assert messages(EventKind.AUTHORIZED) == ["Authorized. Scopes not granted: write."]
    assert messages(EventKind.RECOVERED) == []


def test_reauthorizing_a_broken_grant_as_another_account(connection):
    store_grant(connection, tokens(None), identity=Identity("alice"))  # None: as requested
    Token.objects.update(status=TokenStatus.NEEDS_REAUTH, revocation_pending=True)

    token = store_grant(connection, tokens(None), identity=Identity("bob"))

    token.refresh_from_db()
    assert token.scope == "read write" and token.subject == "bob"
    assert token.status == TokenStatus.ACTIVE and not token.revocation_pending
    assert messages(EventKind.AUTHORIZED) == [
        "Authorized.",
        "Authorized. The account changed from subject alice to subject bob.",
    ]
    assert messages(EventKind.RECOVERED) == ["Recovered by a new authorization."]

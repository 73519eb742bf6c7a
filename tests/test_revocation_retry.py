"""Disconnect while the provider is down: wiped here at once, revoked there later (R45, V3–V5)."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection as db
from django.utils import timezone

from oauthconn import flows
from oauthconn.flows.revocation import MAX_REVOCATION_ATTEMPTS
from oauthconn.models import Connection, PendingRevocation, Provider, Token, TokenStatus
from tests.scripted_server import Reply

pytestmark = pytest.mark.django_db

DOWN = Reply(status=503, headers={"Retry-After": "5"}, body=b"busy")
OK = Reply(status=200, body=b"")


@pytest.fixture
def grant(scripted_server) -> Token:
    provider = Provider.objects.create(
        slug="p",
        name="P",
        token_endpoint="https://as.example/token",
        revocation_endpoint=scripted_server.url("/revoke"),
    )
    connection = Connection.objects.create(
        slug="crm", name="CRM", provider=provider, client_id="cid", client_secret="s"
    )
    return Token.objects.create(
        connection=connection, access_token="AT-canary", refresh_token="RT-canary"
    )


def make_due() -> None:
    PendingRevocation.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def retry() -> str:
    out = io.StringIO()
    call_command("oauthconn_revoke_pending", stdout=out)
    return out.getvalue()


def test_a_provider_that_is_down_gets_the_revocation_later(grant, scripted_server):
    scripted_server.add("/revoke", DOWN)

    result = flows.disconnect(grant)

    grant.refresh_from_db()
    assert result.revoked_at_provider is False and "will be retried" in result.message
    assert grant.access_token is None and grant.refresh_token is None
    assert grant.status == TokenStatus.REVOKED and grant.revocation_pending
    pending = list(PendingRevocation.objects.order_by("pk"))
    assert [p.token_type_hint for p in pending] == ["refresh_token", "access_token"]
    with db.cursor() as cursor:  # kept for the retry, encrypted like every token
        cursor.execute("SELECT value FROM oauthconn_pendingrevocation")
        assert all("canary" not in row[0] for row in cursor.fetchall())
    assert retry().startswith("revoked 0, still pending 0")  # not due yet: nothing sent

    scripted_server.default("/revoke", OK)
    make_due()
    assert retry().startswith("revoked 2, still pending 0, given up 0")

    sent = [r.form() for r in scripted_server.requests_to("/revoke")]
    assert [f["token"] for f in sent] == [["RT-canary"], ["RT-canary"], ["AT-canary"]]
    assert not PendingRevocation.objects.exists()
    grant.refresh_from_db()
    assert not grant.revocation_pending


def test_a_provider_still_down_backs_off(grant, scripted_server):
    scripted_server.default("/revoke", DOWN)
    flows.disconnect(grant)
    make_due()

    assert retry().startswith("revoked 0, still pending 2")

    for pending in PendingRevocation.objects.all():
        assert pending.attempts == 2
        assert pending.next_attempt_at > timezone.now()
        assert "HTTP 503" in pending.last_error or "unavailable" in pending.last_error


def test_a_changed_revocation_endpoint_is_never_sent_the_token(grant, scripted_server):
    scripted_server.add("/revoke", DOWN)
    flows.disconnect(grant)
    Provider.objects.update(revocation_endpoint=scripted_server.url("/elsewhere"))
    make_due()

    with pytest.raises(CommandError, match="given up"):
        retry()

    assert scripted_server.requests_to("/elsewhere") == []
    assert len(scripted_server.requests_to("/revoke")) == 1
    assert not PendingRevocation.objects.exists()
    grant.refresh_from_db()
    assert grant.revocation_pending  # the admin still has to revoke it by hand


def test_a_rejected_client_is_not_retried(grant, scripted_server):
    scripted_server.add("/revoke", Reply(status=401, body={"error": "invalid_client"}))

    result = flows.disconnect(grant)

    assert "Revoke the grant at the provider" in result.message
    assert not PendingRevocation.objects.exists()
    grant.refresh_from_db()
    assert grant.access_token is None and grant.revocation_pending


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=400, body=b"<html>Bad request</html>", headers={"Content-Type": "text/html"}),
        Reply(status=302, headers={"Location": "/elsewhere"}),
    ],
    ids=["a 4xx page that is not JSON", "a redirect"],
)
def test_an_answer_a_refresh_would_retry_is_retried_here_too(grant, scripted_server, reply):
    """Issue 14: one classification (exceptions.is_permanent) for refresh and revocation. A
    refresh keeps a grant ``failing`` and retries after such an answer; revocation used to
    give up at once and tell the admin to revoke by hand."""
    scripted_server.add("/revoke", reply)

    result = flows.disconnect(grant)

    assert result.revoked_at_provider is False and "will be retried" in result.message
    assert PendingRevocation.objects.count() == 2
    grant.refresh_from_db()
    assert grant.access_token is None and grant.revocation_pending

    scripted_server.default("/revoke", OK)
    make_due()
    assert retry().startswith("revoked 2, still pending 0, given up 0")
    assert scripted_server.requests_to("/elsewhere") == []


def test_a_malformed_answer_is_given_up_after_the_last_attempt(grant, scripted_server):
    scripted_server.default("/revoke", Reply(status=400, body=b"Bad", headers={}))
    flows.disconnect(grant)
    PendingRevocation.objects.update(attempts=MAX_REVOCATION_ATTEMPTS)
    make_due()

    with pytest.raises(CommandError, match="given up"):
        retry()

    assert not PendingRevocation.objects.exists()
    grant.refresh_from_db()
    assert grant.revocation_pending  # the admin still has to revoke it by hand


def test_a_pending_revocation_without_a_value_is_given_up_not_sent(grant, scripted_server):
    scripted_server.add("/revoke", DOWN)
    flows.disconnect(grant)
    PendingRevocation.objects.update(value=None)
    make_due()

    with pytest.raises(CommandError, match="given up"):
        retry()

    assert len(scripted_server.requests_to("/revoke")) == 1  # only the disconnect's attempt
    assert not PendingRevocation.objects.exists()
    grant.refresh_from_db()
    assert grant.revocation_pending

"""Notifications: one e-mail / signed webhook per state change, delivered at least once by
the refresh command, across real flows (a scripted token endpoint, a real disconnect) and a
real local webhook receiver that checks signatures."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from oauthconn.flows.common import record_event
from oauthconn.flows.revocation import disconnect
from oauthconn.models import Connection, Event, EventKind, Notification, Provider, Token
from oauthconn.notifications import deliver_due, verify
from oauthconn.notifications.delivery import BACKOFF_BASE
from oauthconn.notifications.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers
from tests.scripted_server import RecordedRequest, Reply

pytestmark = pytest.mark.django_db(transaction=True)

WEBHOOK_SECRET = "whsec-9b1f7c0e-not-a-real-one"
SECRETS = ["AT-canary-a0", "RT-canary-r0", "CS-canary-client", WEBHOOK_SECRET, "AT-canary-a1"]


class Receiver:
    """The webhook receiver's logic, served by the scripted server on 127.0.0.1: checks the
    signature as docs/operations.md tells receivers to, and answers the scripted statuses."""

    def __init__(self, statuses: list[int]):
        self.statuses = list(statuses)
        self.received: list[RecordedRequest] = []

    def __call__(self, request: RecordedRequest) -> Reply:
        self.received.append(request)
        ok = verify(
            WEBHOOK_SECRET,
            request.headers.get(TIMESTAMP_HEADER, ""),
            request.body,
            request.headers.get(SIGNATURE_HEADER, ""),
        )
        if not ok:
            return Reply(status=401, body="bad signature")
        return Reply(status=self.statuses.pop(0) if self.statuses else 200, body="")

    def payloads(self) -> list[dict]:
        return [json.loads(request.body) for request in self.received]


@pytest.fixture
def receiver(scripted_server, settings):
    receiver = Receiver([])
    scripted_server.default("/hook", receiver)
    settings.ADMINS = [("Ops", "ops@example.com")]
    settings.OAUTHCONN = {
        **settings.OAUTHCONN,
        "WEBHOOKS": [{"url": scripted_server.url("/hook"), "secret": WEBHOOK_SECRET}],
    }
    return receiver


@pytest.fixture
def crm(scripted_server):
    """A shared connection whose token endpoint is the scripted server, token expired."""
    provider = Provider.objects.create(
        slug="scripted", name="Scripted", token_endpoint=scripted_server.url("/token")
    )
    connection = Connection.objects.create(
        slug="crm", name="CRM", provider=provider, client_id="c", client_secret=SECRETS[2]
    )
    Token.objects.create(
        connection=connection,
        access_token=SECRETS[0],
        refresh_token=SECRETS[1],
        expires_at=timezone.now() - timedelta(seconds=1),
        authorized_at=timezone.now() - timedelta(days=1),
    )
    return connection


def refresh_run() -> str:
    """``manage.py oauthconn_refresh`` as cron runs it (failures exit non-zero)."""
    out = io.StringIO()
    try:
        call_command("oauthconn_refresh", stdout=out)
    except CommandError:
        pass
    Token.objects.update(next_attempt_at=None)  # the token's own backoff is over
    return out.getvalue()


def assert_no_secret(mailoutbox, receiver) -> None:
    texts = [m.subject + m.body for m in mailoutbox] + [r.body.decode() for r in receiver.received]
    texts += [json.dumps(n.payload) for n in Notification.objects.all()]
    for text in texts:
        assert not any(secret in text for secret in SECRETS), text


def test_invalid_grant_notifies_once(crm, scripted_server, receiver, mailoutbox):
    scripted_server.default("/token", Reply(status=400, body={"error": "invalid_grant"}))

    refresh_run()
    refresh_run()

    (mail,) = mailoutbox
    assert mail.to == ["ops@example.com"]
    assert mail.subject.endswith("[oauthconn] CRM needs reauthorization")
    assert "/admin/oauthconn/connection/" in mail.body
    (payload,) = receiver.payloads()
    assert payload["type"] == "oauthconn.grant.needs_reauth"
    assert payload["connection"] == {"slug": "crm", "name": "CRM"}
    assert payload["status"] == "needs_reauth" and payload["owner_id"] is None
    assert Notification.objects.filter(delivered_at__isnull=False).count() == 2
    assert_no_secret(mailoutbox, receiver)


def test_failing_longer_than_the_setting_notifies_once(
    crm, scripted_server, receiver, mailoutbox, settings
):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "NOTIFY_FAILING_AFTER": 3600}
    scripted_server.default("/token", Reply(status=503, body="down"))

    refresh_run()
    assert mailoutbox == [] and receiver.received == []  # failing, but not for an hour yet
    Event.objects.filter(kind=EventKind.REFRESH_FAILED).update(
        created_at=timezone.now() - timedelta(hours=2)
    )
    refresh_run()
    refresh_run()

    assert len(scripted_server.requests_to("/token")) == 3
    (mail,) = mailoutbox
    assert "CRM has been failing" in mail.subject
    assert [p["status"] for p in receiver.payloads()] == ["failing"]
    assert_no_secret(mailoutbox, receiver)


def test_recovery_then_a_new_breakage_notifies_again(
    crm, scripted_server, receiver, mailoutbox, settings
):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "NOTIFY_FAILING_AFTER": 0}
    renewed = {"access_token": "AT-canary-a1", "token_type": "Bearer", "expires_in": 60}
    down = Reply(status=503, body="down")
    scripted_server.add("/token", down, down, Reply(body=renewed), down)

    for _ in range(3):
        refresh_run()
    # The renewed 60 s token is due again only near its end (a quarter of its lifetime).
    Token.objects.update(expires_at=timezone.now() + timedelta(seconds=5))
    refresh_run()

    kinds = Event.objects.order_by("id").values_list("kind", flat=True)
    assert list(kinds) == ["refresh_failed"] * 2 + ["refreshed", "recovered", "refresh_failed"]
    assert [m.subject.split("[oauthconn] ")[1] for m in mailoutbox] == ["CRM has been failing"] * 2
    assert len(receiver.payloads()) == 2
    assert_no_secret(mailoutbox, receiver)


def test_disconnect_notifies_admins_and_the_owner(
    crm, receiver, mailoutbox, django_user_model, settings
):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "NOTIFY_EMAILS": ["oncall@example.com"]}
    alice = django_user_model.objects.create_user("alice", "alice@example.com", "pw")
    admin = django_user_model.objects.create_user("admin", "admin@example.com", "pw")
    Connection.objects.filter(pk=crm.pk).update(per_user=True)
    token = Token.objects.get(connection=crm)
    Token.objects.filter(pk=token.pk).update(owner=alice)

    disconnect(Token.objects.get(pk=token.pk), actor=admin)
    deliver_due()

    assert sorted(m.to[0] for m in mailoutbox) == ["alice@example.com", "oncall@example.com"]
    (payload,) = receiver.payloads()
    assert payload["status"] == "revoked" and payload["owner_id"] == alice.pk
    assert_no_secret(mailoutbox, receiver)


def test_owner_who_disconnects_is_not_told(crm, mailoutbox, django_user_model, settings):
    settings.ADMINS = []
    alice = django_user_model.objects.create_user("alice", "alice@example.com", "pw")
    Token.objects.filter(connection=crm).update(owner=alice)

    disconnect(Token.objects.get(connection=crm), actor=alice)
    deliver_due()

    assert mailoutbox == [] and not Notification.objects.exists()


def test_outbox_row_rolls_back_with_the_state_change(crm, receiver):
    token = Token.objects.get(connection=crm)
    with pytest.raises(RuntimeError), transaction.atomic():
        record_event(EventKind.NEEDS_REAUTH, crm, token=token, message="x")
        assert Notification.objects.count() == 2  # written in the same transaction
        raise RuntimeError("the state change failed")
    assert not Notification.objects.exists()


def test_webhook_retried_with_backoff_until_delivered(crm, receiver, settings):
    receiver.statuses = [500, 500]
    settings.OAUTHCONN = {**settings.OAUTHCONN, "NOTIFY_EMAILS": []}
    settings.ADMINS = []
    record_event(EventKind.NEEDS_REAUTH, crm, token=Token.objects.get(connection=crm))
    (hook,) = Notification.objects.all()
    start = timezone.now()

    assert deliver_due(start) == {"delivered": 0, "retry": 1, "given_up": 0}
    hook.refresh_from_db()
    first_delay = (hook.next_attempt_at - start).total_seconds()
    assert deliver_due(start) == {"delivered": 0, "retry": 0, "given_up": 0}  # backing off
    later = hook.next_attempt_at
    assert deliver_due(later)["retry"] == 1
    hook.refresh_from_db()
    second_delay = (hook.next_attempt_at - later).total_seconds()
    assert deliver_due(hook.next_attempt_at)["delivered"] == 1

    # Exponential: the second wait is about twice the first (jitter is +-20 %).
    assert 0.8 * BACKOFF_BASE <= first_delay <= 1.2 * BACKOFF_BASE
    assert 1.6 * BACKOFF_BASE <= second_delay <= 2.4 * BACKOFF_BASE
    hook.refresh_from_db()
    assert hook.attempts == 3 and hook.delivered_at is not None
    payloads = receiver.payloads()
    assert len(payloads) == 3 and len({p["id"] for p in payloads}) == 1  # at least once
    stamps = [r.headers[TIMESTAMP_HEADER] for r in receiver.received]
    assert all(stamp.isdigit() for stamp in stamps)  # each attempt signed afresh


def test_gives_up_after_max_attempts(crm, receiver, settings):
    receiver.statuses = [500] * 5
    settings.OAUTHCONN = {**settings.OAUTHCONN, "NOTIFY_EMAILS": [], "NOTIFY_MAX_ATTEMPTS": 2}
    settings.ADMINS = []
    record_event(EventKind.REVOKED, crm, token=Token.objects.get(connection=crm))
    deliver_due()
    hook = Notification.objects.get()
    assert deliver_due(hook.next_attempt_at)["given_up"] == 1
    hook.refresh_from_db()
    assert hook.next_attempt_at is None and hook.delivered_at is None
    assert "HTTP 500" in hook.last_error


def test_private_webhook_host_needs_allowing(crm, settings):
    settings.ADMINS = []
    settings.OAUTHCONN = {
        **settings.OAUTHCONN,
        "WEBHOOKS": [{"url": "https://10.0.0.7/hook", "secret": WEBHOOK_SECRET}],
    }
    record_event(EventKind.REVOKED, crm, token=Token.objects.get(connection=crm))
    assert deliver_due()["retry"] == 1
    assert "ALLOWED_PRIVATE_HOSTS" in Notification.objects.get().last_error


def test_signature_and_replay_detection():
    body = b'{"id":"oauthconn-1-revoked"}'

    headers = signed_headers(WEBHOOK_SECRET, body, now=1_767_225_600)
    stamp, signature = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]
    assert stamp == "1767225600" and signature.startswith("v1=")

    assert verify(WEBHOOK_SECRET, stamp, body, signature, now=1_767_225_660)
    assert not verify(WEBHOOK_SECRET, stamp, body + b" ", signature, now=1_767_225_660)
    assert not verify("another-secret", stamp, body, signature, now=1_767_225_660)
    # The same request replayed ten minutes later: valid signature, stale timestamp.
    assert not verify(WEBHOOK_SECRET, stamp, body, signature, now=1_767_226_200)
    # A fresh timestamp pasted onto the old signature does not verify either.
    assert not verify(WEBHOOK_SECRET, "1767226200", body, signature, now=1_767_226_200)

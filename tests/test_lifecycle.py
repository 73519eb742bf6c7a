"""Token health, events and signals over a connection's life (SECURITY R35–R38, §2.3).

Happy paths run against django-oauth-toolkit over real HTTP; failures come from a small
scripted token endpoint.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.db import connections, transaction
from django.utils import timezone
from oauth2_provider.models import Application, RefreshToken

from oauthconn import get_connection, signals
from oauthconn.exceptions import (
    Busy,
    DecryptionFailed,
    InvalidClient,
    NotConnected,
    ReauthorizationRequired,
    TemporarilyUnavailable,
)
from oauthconn.flows.common import claim_lease, release_lease
from oauthconn.flows.revocation import disconnect
from oauthconn.flows.tokens import BACKOFF_CAP, backoff_delay, renew, renew_locked_token
from oauthconn.models import Connection, Event, GrantType, Provider, Token, TokenStatus
from tests.conftest import authorize
from tests.scripted_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)

SIGNALS = {
    "authorized": signals.authorized,
    "refreshed": signals.refreshed,
    "refresh_failed": signals.refresh_failed,
    "needs_reauthorization": signals.needs_reauthorization,
    "recovered": signals.recovered,
    "revoked": signals.revoked,
}
EVENT_KIND = {"needs_reauthorization": "needs_reauth"}
DOCUMENTED = {"signal", "sender", "connection", "token", "owner", "owner_key", "actor", "event"}


@pytest.fixture
def received():
    """Every oauthconn signal as (name, kwargs, in a transaction when sent?)."""
    seen: list[tuple[str, dict, bool]] = []
    receivers = {}
    for name, signal in SIGNALS.items():

        def receiver(name=name, **kwargs):
            seen.append((name, kwargs, transaction.get_connection().in_atomic_block))

        receivers[name] = receiver
        signal.connect(receiver, sender=Connection, weak=False)
    yield seen
    for name, signal in SIGNALS.items():
        signal.disconnect(receivers[name], sender=Connection)


def names(seen) -> list[str]:
    return [name for name, _, _ in seen]


def expire(connection) -> None:
    Token.objects.filter(connection=connection).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def access_token(slug: str = "crm") -> str:
    return get_connection(slug).access_token


@pytest.fixture
def connected(staff_client, make_connection, as_log):
    connection = make_connection()
    authorize(staff_client, connection)
    as_log.clear()
    return connection


def secrets_of(token: Token) -> list[str]:
    return [value.reveal() for value in (token.access_token, token.refresh_token) if value]


def assert_no_secret_in_events(connection, secrets: list[str]) -> None:
    for event in Event.objects.filter(connection=connection):
        text = event.message + json.dumps(event.data)
        assert not any(secret in text for secret in secrets), event.kind


def test_life_of_a_connection_sends_each_signal_after_commit(
    staff_client, staff, connected, received, as_log
):
    old = Token.objects.get(connection=connected)
    seen_secrets = secrets_of(old)
    expire(connected)
    access_token()
    seen_secrets += secrets_of(Token.objects.get(connection=connected))
    RefreshToken.objects.all().delete()  # the provider forgets the grant
    expire(connected)
    with pytest.raises(ReauthorizationRequired):
        access_token()
    authorize(staff_client, connected)
    disconnect(Token.objects.get(connection=connected), actor=staff)

    assert names(received) == [
        "refreshed",
        "needs_reauthorization",
        "authorized",
        "recovered",
        "revoked",
    ]
    for name, kwargs, in_transaction in received:
        assert not in_transaction, f"{name} was sent before commit"
        expected = DOCUMENTED | ({"error"} if name == "needs_reauthorization" else set())
        assert set(kwargs) == expected
        assert kwargs["connection"] == connected and kwargs["owner"] is None
        assert kwargs["owner_key"] == ""
        assert kwargs["event"].kind == EVENT_KIND.get(name, name) and kwargs["event"].pk
        assert kwargs["token"].pk == kwargs["event"].token_id
    assert isinstance(received[1][1]["error"], ReauthorizationRequired)
    assert [kwargs["actor"] for _, kwargs, _ in received] == [None, None, staff, staff, staff]
    kinds = list(Event.objects.filter(connection=connected).order_by("id").values_list("kind"))
    assert [k for (k,) in kinds] == [
        "authorized",
        "refreshed",
        "needs_reauth",
        "authorized",
        "recovered",
        "revoked",
    ]
    assert_no_secret_in_events(connected, seen_secrets)


@pytest.fixture
def scripted(scripted_server):
    """A connected connection whose token endpoint is the scripted server."""
    provider = Provider.objects.create(
        slug="scripted", name="Scripted", token_endpoint=scripted_server.url("/token")
    )
    connection = Connection.objects.create(
        slug="crm", name="CRM", provider=provider, client_id="c", client_secret="s", scopes="read"
    )
    Token.objects.create(
        connection=connection,
        access_token="a0",
        refresh_token="r0",
        expires_at=timezone.now() - timedelta(seconds=1),
        authorized_at=timezone.now() - timedelta(days=1),
    )
    return connection


def test_failing_then_recovered(scripted, scripted_server, received):
    scripted_server.add(
        "/token",
        Reply(status=503, body="down"),
        Reply(body={"access_token": "a1", "token_type": "Bearer", "expires_in": 60}),
    )
    with pytest.raises(TemporarilyUnavailable):
        access_token()
    Token.objects.filter(connection=scripted).update(next_attempt_at=None)  # backoff over

    assert access_token() == "a1"

    token = Token.objects.get(connection=scripted)
    assert token.status == TokenStatus.ACTIVE and token.failure_count == 0
    assert token.refresh_token.reveal() == "r0"  # no new one issued: the old one is kept
    assert token.last_error == "" and token.next_attempt_at is None
    assert names(received) == ["refresh_failed", "refreshed", "recovered"]
    failed = received[0][1]
    assert set(failed) == DOCUMENTED | {"error"}
    assert failed["event"].data["failures"] == 1 and failed["event"].data["retry_in"] > 0
    assert_no_secret_in_events(scripted, ["a0", "a1", "r0"])


def test_backoff_grows_and_is_capped():
    delays = [backoff_delay(n) for n in range(1, 20)]
    assert delays[0] <= 12 and delays[3] >= 64  # 10 s, then doubling (with ±20 % jitter)
    assert max(delays) <= BACKOFF_CAP * 1.2
    assert backoff_delay(1, retry_after=300) >= 300
    assert backoff_delay(1, retry_after=10**9) <= BACKOFF_CAP


def test_second_failure_backs_off_longer(scripted, scripted_server):
    scripted_server.default("/token", Reply(status=500, body="boom"))
    with pytest.raises(TemporarilyUnavailable) as first:
        access_token()
    Token.objects.filter(connection=scripted).update(next_attempt_at=None)
    with pytest.raises(TemporarilyUnavailable) as second:
        access_token()
    token = Token.objects.get(connection=scripted)
    assert token.failure_count == 2 and token.status == TokenStatus.FAILING
    assert second.value.retry_after > first.value.retry_after
    assert len(scripted_server.requests_to("/token")) == 2


def test_refresh_token_expiry_is_tracked(scripted, scripted_server):
    body = {"access_token": "a1", "token_type": "Bearer", "expires_in": 60, "refresh_token": "r1"}
    scripted_server.add(
        "/token",
        Reply(body={**body, "refresh_token_expires_in": 86400}),
        Reply(body={**body, "refresh_token": "r2", "refresh_expires_in": 7200}),
        Reply(body={"access_token": "a3", "token_type": "Bearer", "refresh_expires_in": 600}),
    )
    moments = []
    for _ in range(3):
        expire(scripted)
        moments.append(timezone.now())
        access_token()
        token = Token.objects.get(connection=scripted)
        moments.append(token.refresh_expires_at)

    start, day, second, two_hours, third, sliding = moments
    assert start + timedelta(days=1) <= day <= timezone.now() + timedelta(days=1)
    assert second + timedelta(hours=2) <= two_hours <= timezone.now() + timedelta(hours=2)
    # no new refresh token, but a new expiry for the one kept (Keycloak's sliding sessions)
    assert third + timedelta(minutes=10) <= sliding <= timezone.now() + timedelta(minutes=10)
    assert token.refresh_token.reveal() == "r2"


def test_without_a_refresh_token_expiry_needs_reauthorization_without_a_request(
    scripted, scripted_server, received
):
    Token.objects.filter(connection=scripted).update(refresh_token=None)
    with pytest.raises(ReauthorizationRequired):
        access_token()
    token = Token.objects.get(connection=scripted)
    assert token.status == TokenStatus.NEEDS_REAUTH
    assert "no refresh token" in token.last_error
    assert scripted_server.requests_to("/token") == []
    assert names(received) == ["needs_reauthorization"]


def test_invalid_client_from_the_real_provider(connected, as_log):
    Application.objects.filter(client_id=connected.client_id).update(client_secret="changed")
    expire(connected)
    with pytest.raises(ReauthorizationRequired) as caught:
        access_token()
    assert isinstance(caught.value.__cause__, InvalidClient)
    token = Token.objects.get(connection=connected)
    assert token.status == TokenStatus.NEEDS_REAUTH and token.last_error_code == "invalid_client"
    assert "check the client id, secret" in token.last_error
    with pytest.raises(ReauthorizationRequired):
        access_token()
    assert len(as_log.to("/demo-oauth/token/")) == 1


def test_invalid_grant_after_another_worker_rotated_is_not_a_broken_grant(
    scripted, scripted_server
):
    """A worker that read the row before another one rotated the refresh token (e.g. a
    process that does not take the lock) gets invalid_grant: it must adopt the winner's
    token instead of marking the connection broken (issue 4; SECURITY R37)."""
    scripted_server.default("/token", Reply(status=400, body={"error": "invalid_grant"}))
    loser = Token.objects.get(connection=scripted)  # still holds r0
    Token.objects.filter(pk=loser.pk).update(
        access_token="a-winner",  # the encrypted field seals plaintext on the way in
        refresh_token="r-winner",
        expires_at=timezone.now() + timedelta(hours=1),
    )

    with transaction.atomic():
        outcome = renew_locked_token(loser, force=True)

    assert outcome.error is None
    assert outcome.token.access_token.reveal() == "a-winner"
    (request,) = scripted_server.requests_to("/token")
    assert request.form()["refresh_token"] == ["r0"]
    token = Token.objects.get(connection=scripted)
    assert token.status == TokenStatus.ACTIVE and token.refresh_token.reveal() == "r-winner"
    assert not Event.objects.filter(kind="needs_reauth").exists()


def test_invalid_grant_when_nobody_rotated_is_a_broken_grant(scripted, scripted_server):
    scripted_server.default("/token", Reply(status=400, body={"error": "invalid_grant"}))
    with transaction.atomic():
        outcome = renew_locked_token(Token.objects.get(connection=scripted), force=True)
    assert isinstance(outcome.error, ReauthorizationRequired)
    assert Token.objects.get(connection=scripted).status == TokenStatus.NEEDS_REAUTH


def test_a_disconnected_token_stays_revoked(connected, staff, as_log):
    token = Token.objects.get(connection=connected)
    disconnect(token, actor=staff)
    with pytest.raises(NotConnected):
        access_token()
    with pytest.raises(NotConnected):
        renew(connected, stale=token, force=True)  # a worker that read it before
    with pytest.raises(NotConnected):
        renew(connected)
    assert Token.objects.get(connection=connected).status == TokenStatus.REVOKED
    assert as_log.to("/demo-oauth/token/") == []


def test_client_credentials_fetch_then_renew(make_connection, as_log, received):
    make_connection("machine", grant_type=GrantType.CLIENT_CREDENTIALS)
    first = access_token("machine")
    expire(Connection.objects.get(slug="machine"))
    second = access_token("machine")
    assert first != second
    assert [r.form["grant_type"] for r in as_log.to("/demo-oauth/token/")] == [
        ["client_credentials"]
    ] * 2
    assert names(received) == ["authorized", "refreshed"]


def test_a_token_request_in_flight_does_not_block_other_writers(
    scripted, scripted_server, django_user_model
):
    """The site keeps writing while a refresh waits for the provider. SQLite has one write
    lock for the whole database, so the refresh must not hold it over the network (the
    demo's provider lives in the same database and must be able to issue the token)."""
    wrote: list[str] = []

    def provider_that_writes(request):
        try:
            django_user_model.objects.create(username="written-meanwhile")
            wrote.append("ok")
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            wrote.append(repr(err))
        finally:
            connections.close_all()
        return Reply(body={"access_token": "a1", "token_type": "Bearer", "expires_in": 60})

    scripted_server.add("/token", provider_that_writes)
    assert access_token() == "a1"
    assert wrote == ["ok"]


def test_a_lease_held_by_another_process_is_respected(scripted, scripted_server):
    """SQLite's cross-process claim: while another process holds the lease nobody sends a
    request; a caller with an expired token is told to retry, and a dead holder's lease
    simply ends."""
    if db_connection.vendor == "postgresql":
        # The lease is SQLite's (its own column now, no longer read as a backoff):
        # PostgreSQL waits on the row lock, see test_concurrency's lock timeout test.
        pytest.skip("the lease is SQLite's; PostgreSQL waits on the row lock instead")
    scripted_server.default(
        "/token", Reply(body={"access_token": "a1", "token_type": "Bearer", "expires_in": 60})
    )
    token = Token.objects.get(connection=scripted)
    until = claim_lease(token.pk, 30)  # as the other process would
    assert until is not None and claim_lease(token.pk, 30) is None

    with pytest.raises(TemporarilyUnavailable, match="Another worker is refreshing") as caught:
        access_token()
    assert isinstance(caught.value, Busy) and caught.value.code == "busy"
    assert 0 < caught.value.retry_after <= 30
    assert scripted_server.requests_to("/token") == []
    assert Token.objects.get(pk=token.pk).status == TokenStatus.ACTIVE
    assert Token.objects.get(pk=token.pk).next_attempt_at is None  # a lease is no backoff

    Token.objects.filter(pk=token.pk).update(lease_until=timezone.now())  # it ran out
    assert access_token() == "a1"
    assert Token.objects.get(pk=token.pk).lease_until is None
    release_lease(token.pk, until)  # a late release changes nothing
    assert Token.objects.get(pk=token.pk).lease_until is None
    assert Token.objects.get(pk=token.pk).next_attempt_at is None


def test_an_undecryptable_refresh_token_is_failing_not_broken(scripted, scripted_server):
    """A key removed too early: the connection says so and recovers once the key is back."""
    with db_connection.cursor() as cursor:
        cursor.execute("UPDATE oauthconn_token SET refresh_token = %s", ["not-a-fernet-token"])
    with pytest.raises(TemporarilyUnavailable) as caught:
        access_token()
    assert isinstance(caught.value.__cause__, DecryptionFailed)
    token = Token.objects.get(connection=scripted)
    assert token.status == TokenStatus.FAILING and "cannot be decrypted" in token.last_error
    assert scripted_server.requests_to("/token") == []


def test_a_refreshed_id_token_does_not_replace_the_validated_one(scripted, scripted_server):
    Token.objects.filter(connection=scripted).update(id_token="validated.at.authorization")
    body = {"access_token": "a1", "token_type": "Bearer", "id_token": "unchecked.id.token"}
    scripted_server.add("/token", Reply(body=body))
    assert access_token() == "a1"
    token = Token.objects.get(connection=scripted)
    assert token.id_token.reveal() == "validated.at.authorization"

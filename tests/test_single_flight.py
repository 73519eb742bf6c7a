"""Issue 14: the SQLite lease has its own column, sized for the requests made under it; busy
is told apart from a failing provider; the process-local lock map does not grow.

The lease tests run on both engines: on SQLite they see the lease, on PostgreSQL (run with
DATABASE_URL) the row lock and an empty lease column.
"""

from __future__ import annotations

import gc
import threading
from datetime import timedelta

import pytest
from django.db import DatabaseError, connections, transaction
from django.db import connection as db_connection
from django.utils import timezone

from oauthconn import get_connection
from oauthconn.exceptions import Busy, TemporarilyUnavailable
from oauthconn.flows import tokens
from oauthconn.flows.common import LEASE_MARGIN, claim_lease, lease_seconds
from oauthconn.models import Connection, GrantType, Provider, Token, TokenStatus
from tests.scripted_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)

GOOD = {"access_token": "a1", "token_type": "Bearer", "expires_in": 3600}
DEADLINE = 5.0


@pytest.fixture
def provider(scripted_server) -> Provider:
    return Provider.objects.create(
        slug="scripted", name="Scripted", token_endpoint=scripted_server.url("/token")
    )


def expired_grant(connection: Connection, owner=None, **fields) -> Token:
    return Token.objects.create(
        connection=connection,
        owner=owner,
        access_token="a0",
        refresh_token="r0",
        expires_at=timezone.now() - timedelta(seconds=1),
        authorized_at=timezone.now() - timedelta(days=1),
        **fields,
    )


@pytest.fixture
def grant(provider) -> Token:
    connection = Connection.objects.create(
        slug="crm", name="CRM", provider=provider, client_id="c", client_secret="s"
    )
    return expired_grant(connection)


def read_row_during_the_request(pk: int, seen: dict):
    """A token endpoint that looks at the row (from its own database connection) while the
    refresh is in flight, then answers."""

    def handler(request):
        try:
            row = Token.objects.get(pk=pk)
            seen.update(now=timezone.now(), lease=row.lease_until, backoff=row.next_attempt_at)
            seen["row_locked"] = row_is_locked(pk)
        finally:
            connections.close_all()
        return Reply(body=GOOD)

    return handler


def row_is_locked(pk: int) -> bool | None:
    if db_connection.vendor != "postgresql":
        return None
    try:
        with transaction.atomic():
            Token.objects.select_for_update(nowait=True).filter(pk=pk).first()
    except DatabaseError:
        return True
    return False


def test_a_refresh_in_flight_is_a_lease_or_a_row_lock_never_a_backoff(
    grant, scripted_server, settings
):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REQUEST_DEADLINE": DEADLINE}
    seen: dict = {}
    scripted_server.add("/token", read_row_during_the_request(grant.pk, seen))

    assert get_connection("crm").access_token == "a1"

    assert seen["backoff"] is None  # an admin page or the API never shows it as a backoff
    if db_connection.vendor == "postgresql":
        assert seen["lease"] is None and seen["row_locked"] is True
    else:
        left = (seen["lease"] - seen["now"]).total_seconds()
        assert LEASE_MARGIN < left <= DEADLINE + LEASE_MARGIN
    grant.refresh_from_db()
    assert grant.lease_until is None and grant.next_attempt_at is None


def test_the_lease_covers_each_request_of_an_oidc_refresh(grant, settings):
    """Token request, then the JWKS fetch and one refetch for an unknown key id."""
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REQUEST_DEADLINE": DEADLINE}
    assert lease_seconds(grant.pk) == DEADLINE + LEASE_MARGIN

    Provider.objects.update(jwks_uri="https://as.example/jwks")
    assert lease_seconds(grant.pk) == DEADLINE + LEASE_MARGIN  # no validated ID token
    Token.objects.filter(pk=grant.pk).update(subject="alice")
    assert lease_seconds(grant.pk) == 3 * DEADLINE + LEASE_MARGIN


def test_another_workers_lease_is_busy_even_while_failing(grant, scripted_server):
    """A failing grant whose backoff is over, while another process holds the lease: busy
    here, not the provider's old error (the old code guessed from one shared column)."""
    if db_connection.vendor == "postgresql":
        pytest.skip("the lease is SQLite's; PostgreSQL waits on the row lock instead")
    scripted_server.default("/token", Reply(body=GOOD))
    Token.objects.filter(pk=grant.pk).update(
        status=TokenStatus.FAILING,
        last_error="The token endpoint is temporarily unavailable (HTTP 503)",
        failure_count=1,
        next_attempt_at=timezone.now() - timedelta(seconds=1),
    )
    assert claim_lease(grant.pk, 30) is not None  # as the other process would

    with pytest.raises(Busy, match="Another worker is refreshing") as caught:
        get_connection("crm").access_token  # noqa: B018
    assert caught.value.code == "busy" and "HTTP 503" not in str(caught.value)
    assert scripted_server.requests_to("/token") == []


def test_a_backoff_is_the_providers_failure_not_busy(grant, scripted_server):
    scripted_server.default("/token", Reply(body=GOOD))
    Token.objects.filter(pk=grant.pk).update(
        status=TokenStatus.FAILING,
        last_error="The token endpoint is temporarily unavailable (HTTP 503)",
        failure_count=1,
        next_attempt_at=timezone.now() + timedelta(seconds=60),
    )

    with pytest.raises(TemporarilyUnavailable, match="HTTP 503") as caught:
        get_connection("crm").access_token  # noqa: B018
    assert not isinstance(caught.value, Busy) and caught.value.code == "provider_unavailable"
    assert 0 < caught.value.retry_after <= 60
    assert scripted_server.requests_to("/token") == []


def test_waiting_too_long_for_this_process_lock_is_busy(grant, scripted_server, settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "LOCK_TIMEOUT": 0.1}
    scripted_server.default("/token", Reply(body=GOOD))
    held = tokens._local_lock(grant.connection, None)
    with held:  # another thread's refresh of the same token, as far as the lock can tell
        with pytest.raises(Busy, match="Timed out waiting") as caught:
            get_connection("crm").access_token  # noqa: B018
    assert caught.value.code == "busy"
    assert scripted_server.requests_to("/token") == []
    assert Token.objects.get(pk=grant.pk).failure_count == 0


def test_the_api_says_busy_when_another_worker_is_renewing(grant, staff_client, scripted_server):
    if db_connection.vendor == "postgresql":
        pytest.skip("the lease is SQLite's; PostgreSQL waits on the row lock instead")
    scripted_server.default("/token", Reply(body=GOOD))
    Token.objects.filter(pk=grant.pk).update(expires_at=timezone.now() + timedelta(minutes=30))
    claim_lease(grant.pk, 30)  # as the other process would

    response = staff_client.post(f"/api/oauthconn/connections/{grant.connection.pk}/refresh/")

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "busy"
    assert body["detail"].startswith("Nothing was renewed: Another worker is refreshing")
    assert 0 < int(response["Retry-After"]) <= 30
    assert scripted_server.requests_to("/token") == []


# --- the process-local lock map -------------------------------------------------------------


def test_the_lock_map_keeps_nothing_after_many_owners_refreshed(
    provider, scripted_server, django_user_model
):
    scripted_server.default("/token", Reply(body=GOOD))
    connection = Connection.objects.create(
        slug="mine",
        name="Mine",
        provider=provider,
        client_id="c",
        client_secret="s",
        per_user=True,
        grant_type=GrantType.AUTHORIZATION_CODE,
    )
    users = [django_user_model.objects.create(username=f"user{n}") for n in range(25)]
    for user in users:
        expired_grant(connection, owner=user)

    for user in users:
        assert get_connection("mine", owner=user).access_token == "a1"

    gc.collect()  # nothing should need it; it only rules out a delayed collection
    assert len(tokens._locks) == 0
    assert len(scripted_server.requests_to("/token")) == len(users)


def test_a_lock_in_use_is_never_dropped_or_replaced(grant):
    connection = grant.connection
    lock = tokens._local_lock(connection, None)
    with lock:
        gc.collect()
        assert tokens._local_lock(connection, None) is lock  # same lock while held
    assert tokens._local_lock(connection, None) is lock  # and while anyone refers to it
    del lock
    gc.collect()
    assert len(tokens._locks) == 0


def test_threads_racing_for_the_same_key_never_hold_two_locks_at_once(grant):
    """Entries appear and vanish all the time here; mutual exclusion must hold throughout."""
    connection = grant.connection
    inside = 0
    most = 0
    guard = threading.Lock()

    def work():
        nonlocal inside, most
        for _ in range(2000):
            with tokens._local_lock(connection, None):
                with guard:
                    inside += 1
                    most = max(most, inside)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1
    gc.collect()
    assert len(tokens._locks) == 0

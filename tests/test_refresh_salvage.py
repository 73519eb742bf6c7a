"""Defect 11: a refresh token the provider issued is never discarded.

A provider that rotates refresh tokens answers the first refresh with 200, a new refresh
token and no usable access token, and from then on accepts only that new refresh token.
The refused response keeps the old access token, but the new refresh token must be stored
(encrypted) so the next attempt can use it; otherwise the grant is lost.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from oauthconn import get_connection
from oauthconn.exceptions import InvalidProviderResponse, TemporarilyUnavailable
from oauthconn.models import Connection, Event, EventKind, Provider, Token, TokenStatus
from oauthconn.oauth.token_response import parse_token_response
from tests.scripted_server import RecordedRequest, Reply

pytestmark = pytest.mark.django_db

OLD_ACCESS, OLD_REFRESH = "old-access-0f3a", "old-refresh-77c1"
NEW_REFRESH = "rotated-refresh-R2-d41d8cd98f"

#: 200 answers that carry a new refresh token but no usable access token
HALF_VALID = {
    "no-access-token": {"token_type": "Bearer", "expires_in": 3600},
    "empty-access-token": {"access_token": "", "token_type": "Bearer"},
    "numeric-access-token": {"access_token": 42, "token_type": "Bearer"},
    "bad-token-type": {"access_token": "a", "token_type": "mac"},
    "bad-expires-in": {"access_token": "a", "token_type": "Bearer", "expires_in": -5},
}


@pytest.fixture
def grant(scripted_server) -> Token:
    """An expired grant at a provider served by scripted_server."""
    provider = Provider.objects.create(
        slug="rot", name="Rotating", token_endpoint=scripted_server.url("/token")
    )
    connection = Connection.objects.create(
        slug="crm", name="CRM", provider=provider, client_id="c", client_secret="s"
    )
    return Token.objects.create(
        connection=connection,
        access_token=OLD_ACCESS,
        refresh_token=OLD_REFRESH,
        expires_at=timezone.now() - timedelta(seconds=1),
    )


def only_the_rotated_token(request: RecordedRequest) -> Reply:
    if request.form().get("refresh_token") != [NEW_REFRESH]:
        return Reply(status=400, body={"error": "invalid_grant"})
    body = {"access_token": "new-access", "token_type": "Bearer", "expires_in": 3600}
    return Reply(body={**body, "refresh_token": "rotated-again-R3"})


@pytest.mark.parametrize("body", HALF_VALID.values(), ids=HALF_VALID.keys())
def test_a_refused_refresh_keeps_the_new_refresh_token(grant, scripted_server, body):
    scripted_server.add("/token", Reply(body={**body, "refresh_token": NEW_REFRESH}))
    scripted_server.default("/token", only_the_rotated_token)

    with pytest.raises(TemporarilyUnavailable) as caught:
        get_connection("crm").access_token

    grant.refresh_from_db()
    assert grant.status == TokenStatus.FAILING
    assert grant.access_token.reveal() == OLD_ACCESS
    assert grant.refresh_token.reveal() == NEW_REFRESH
    stored = Token.objects.filter(pk=grant.pk).values_list("refresh_token", flat=True).get()
    assert NEW_REFRESH not in stored.ciphertext  # encrypted at rest
    event = Event.objects.get(kind=EventKind.REFRESH_FAILED)
    assert "new refresh token it sent was kept" in event.message
    assert event.data["kept_new_refresh_token"] is True
    for error in (caught.value, caught.value.__cause__):
        assert NEW_REFRESH not in f"{error} {error!r} {error.args!r} {event.message}"

    Token.objects.filter(pk=grant.pk).update(next_attempt_at=None)  # the backoff has passed
    assert get_connection("crm").access_token == "new-access"
    assert scripted_server.requests_to("/token")[-1].form()["refresh_token"] == [NEW_REFRESH]
    assert Token.objects.get(pk=grant.pk).refresh_token.reveal() == "rotated-again-R3"


def test_the_parse_error_carries_the_refresh_token_without_printing_it():
    body = b'{"token_type": "Bearer", "refresh_token": "%s"}' % NEW_REFRESH.encode()

    with pytest.raises(InvalidProviderResponse) as caught:
        parse_token_response(
            200, {}, body, sent_at=datetime.now(UTC), default_lifetime=3600, max_lifetime=10**6
        )

    error = caught.value
    assert error.salvaged_refresh_token == NEW_REFRESH
    assert NEW_REFRESH not in f"{error} {error!r} {error.args!r} {vars(error)!r}"


def test_nothing_is_salvaged_from_an_error_response(grant, scripted_server):
    body = {"error": "server_error", "refresh_token": NEW_REFRESH}
    scripted_server.add("/token", Reply(status=200, body=body))

    with pytest.raises(TemporarilyUnavailable):
        get_connection("crm").access_token

    assert Token.objects.get(pk=grant.pk).refresh_token.reveal() == OLD_REFRESH

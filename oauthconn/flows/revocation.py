"""Disconnect: revoke at the provider (RFC 7009), then forget the tokens locally."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import connection as db_connection
from django.db import transaction
from django.utils import timezone

from oauthconn.exceptions import OAuthConnError, is_permanent
from oauthconn.flows.common import (
    credentials_for,
    lock_token,
    outbound_client,
    record_event,
    reusing_outbound_client,
)
from oauthconn.flows.tokens import backoff_delay
from oauthconn.models import Connection, EventKind, PendingRevocation, Token, TokenStatus
from oauthconn.oauth.revoke import revoke_token

if TYPE_CHECKING:
    from oauthconn.types import Actor


@dataclass(frozen=True)
class DisconnectResult:
    #: True: revoked at the provider; False: revocation failed; None: no revocation endpoint
    revoked_at_provider: bool | None
    message: str
    #: (token, token_type_hint) left to revoke later: the provider failed for a passing reason
    pending: tuple[tuple[str, str], ...] = field(default=(), repr=False)


def disconnect(token: Token, *, actor: Actor = None) -> DisconnectResult:
    """Revoke the refresh token and the access token, then wipe both, whatever the provider says.

    A provider that cannot be reached marks the token ``revocation_pending`` so an admin knows
    to revoke the grant at the provider by hand.
    """
    if db_connection.features.has_select_for_update:
        # The row lock keeps a refresh from rotating the tokens between revoke and wipe.
        with transaction.atomic():
            token = lock_token(token.pk)
            result = _revoke_at_provider(token)
            _forget(token, result, actor)
        return result
    # SQLite's lock covers the whole database: holding it over the network would stall every
    # writer, the provider too when it shares the database (the demo). Revoke first, then
    # wipe; a refresh racing in between is the narrow price, and SQLite is not for that load.
    result = _revoke_at_provider(
        Token.objects.select_related("connection__provider").get(pk=token.pk)
    )
    with transaction.atomic():
        _forget(lock_token(token.pk), result, actor)
    return result


def _forget(token: Token, result: DisconnectResult, actor: Actor) -> None:
    token.clear_credentials()
    token.status = TokenStatus.REVOKED
    token.revocation_pending = result.revoked_at_provider is False
    token.save()
    queue_revocations(token.connection, result.pending, token=token)
    record_event(
        EventKind.REVOKED, token.connection, token=token, actor=actor, message=result.message
    )


def queue_revocations(
    connection: Connection,
    pairs: Iterable[tuple[str, str]],
    *,
    token: Token | None = None,
    at: datetime | None = None,
) -> None:
    """Leave ``(value, token_type_hint)`` pairs to ``oauthconn_revoke_pending``, due ``at``
    (by default after the first backoff step: the provider just failed)."""
    at = at or timezone.now() + timedelta(seconds=backoff_delay(1))
    for value, hint in pairs:
        PendingRevocation.objects.create(
            connection=connection,
            token=token,
            value=value,
            token_type_hint=hint,
            endpoint=connection.provider.revocation_endpoint,
            next_attempt_at=at,
        )


def revoke_unstored(connection: Connection, pairs: Sequence[tuple[str, str]]) -> bool | None:
    """Revoke tokens that never became a stored grant (a declined account switch), best effort.

    Refresh token first, as for a disconnect; a passing failure leaves the rest to
    ``oauthconn_revoke_pending``. True: revoked; False: the provider refused or failed; None:
    the provider has no revocation endpoint. Never holds a transaction over the network.
    """
    endpoint = connection.provider.revocation_endpoint
    if not endpoint or not pairs:
        return None
    with reusing_outbound_client():
        result = _revoke_each(connection, endpoint, list(pairs))
    if result.pending:
        queue_revocations(connection, result.pending)
    return result.revoked_at_provider


def _revoke_at_provider(token: Token) -> DisconnectResult:
    endpoint = token.connection.provider.revocation_endpoint
    if not endpoint:
        return DisconnectResult(None, "Disconnected. The provider has no revocation endpoint.")
    # Refresh token first: revoking it usually ends the whole grant (RFC 7009 §2.1).
    stored = [(token.refresh_token, "refresh_token"), (token.access_token, "access_token")]
    pairs = [(value.reveal(), hint) for value, hint in stored if value is not None]
    with reusing_outbound_client():  # both revocations over one connection
        return _revoke_each(token.connection, endpoint, pairs)


def _revoke_each(
    connection: Connection, endpoint: str, pairs: Sequence[tuple[str, str]]
) -> DisconnectResult:
    for done, (value, hint) in enumerate(pairs):
        try:
            _revoke(connection, endpoint, value, hint)
        except OAuthConnError as err:
            if is_permanent(err):
                return DisconnectResult(
                    False,
                    f"Disconnected here, but revocation at the provider failed: {err}. "
                    "Revoke the grant at the provider.",
                )
            return DisconnectResult(
                False,
                f"Disconnected here; revocation at the provider failed for now ({err}) and "
                "will be retried by oauthconn_revoke_pending.",
                pending=tuple(pairs[done:]),
            )
    return DisconnectResult(True, "Disconnected and revoked at the provider.")


def _revoke(connection: Connection, endpoint: str, value: str, hint: str) -> None:
    with outbound_client() as client:
        revoke_token(
            client,
            endpoint,
            token=value,
            token_type_hint=hint,
            credentials=credentials_for(connection),
        )


# --- retrying --------------------------------------------------------------------------------

#: Attempts after which a pending revocation is given up (and the admin told).
MAX_REVOCATION_ATTEMPTS = 8


@dataclass
class RetrySummary:
    revoked: int = 0
    pending: int = 0
    given_up: int = 0


def retry_pending_revocations(*, now: datetime | None = None) -> RetrySummary:
    """Retry the revocations that are due; each at most once per call (RFC 7009 §2.2.1)."""
    now = now or timezone.now()
    summary = RetrySummary()
    due = PendingRevocation.objects.filter(next_attempt_at__lte=now).select_related(
        "connection__provider", "token"
    )
    with reusing_outbound_client():
        for pending in due.order_by("next_attempt_at"):
            outcome = _retry(pending)
            setattr(summary, outcome, getattr(summary, outcome) + 1)
    return summary


def _retry(pending: PendingRevocation) -> str:
    connection = pending.connection
    if connection.provider.revocation_endpoint != pending.endpoint:
        # R45: never send a token to an endpoint that changed after it was issued.
        return _give_up(pending, "the revocation endpoint changed since the disconnect")
    if pending.value is None:  # nothing left to send (a row written or edited by hand)
        return _give_up(pending, "no token value is stored for it")
    try:
        _revoke(connection, pending.endpoint, pending.value.reveal(), pending.token_type_hint)
    except OAuthConnError as err:
        if is_permanent(err) or pending.attempts >= MAX_REVOCATION_ATTEMPTS:
            return _give_up(pending, str(err))
        pending.attempts += 1
        pending.last_error = str(err)
        delay = backoff_delay(pending.attempts, getattr(err, "retry_after", None))
        pending.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        pending.save()
        return "pending"
    _settle(pending, "Revoked at the provider on a later attempt.")
    return "revoked"


def _give_up(pending: PendingRevocation, reason: str) -> str:
    message = f"Revocation at the provider given up ({reason}): revoke it there by hand."
    _settle(pending, message, revoked=False)
    return "given_up"


@transaction.atomic
def _settle(pending: PendingRevocation, message: str, *, revoked: bool = True) -> None:
    token = pending.token
    pending.delete()
    if token is not None and not PendingRevocation.objects.filter(token=token).exists():
        Token.objects.filter(pk=token.pk).update(revocation_pending=not revoked)
    # An audit row only: receivers of ``revoked`` already heard of this disconnect.
    record_event(
        EventKind.REVOKED, pending.connection, token=token, message=message, send_signal=False
    )

"""What a renewal's result does to a grant: stored, failing with backoff, or needs reauthorization.

Called by :mod:`oauthconn.flows.tokens` under the row lock (or SQLite lease), inside its
transaction; events are recorded here and their signals sent after commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol

from django.db import transaction
from django.utils import timezone

from oauthconn.backoff import jittered_backoff
from oauthconn.base_url import renewed_values
from oauthconn.exceptions import OAuthConnError, TemporarilyUnavailable
from oauthconn.flows.common import (
    APPLIED_FIELDS,
    apply_token_set,
    new_event,
    record_event,
    record_events,
)
from oauthconn.models import Event, EventKind, Token, TokenStatus
from oauthconn.oauth.token_response import TokenSet

BACKOFF_BASE = 10.0
BACKOFF_CAP = 15 * 60.0

#: Who renews in this context, for the events below: the renewal functions take no actor, and
#: their callers (admin buttons, the proactive job) know it while tokens.py need not.
_renewer: ContextVar[tuple[Any, str]] = ContextVar("oauthconn_renewer", default=(None, ""))


@contextmanager
def renewing_as(*, actor: Any = None, source: str = "") -> Iterator[None]:
    """Name the user (``actor``) or the job (``source``, e.g. ``"oauthconn_refresh"``) that
    renews tokens inside this block; the renewal events record it. Neither: "automatic"."""
    reset = _renewer.set((actor, source))
    try:
        yield
    finally:
        _renewer.reset(reset)


def renewer() -> dict[str, Any]:
    """``record_event`` keywords naming who renews (see :func:`renewing_as`)."""
    actor, source = _renewer.get()
    return {"actor": actor, **({"source": source} if source else {})}


#: Part of the caller's transaction (the renewal's row lock), not a savepoint of its own:
#: a failure here aborts the renewal anyway, and a savepoint costs two more round trips.
#: Called without a transaction, it still is one.
_in_callers_transaction = transaction.atomic(savepoint=False)


@dataclass
class Outcome:
    """A renewal's result: the row as it is now, and the error to raise after commit."""

    token: Token
    error: OAuthConnError | None = None


#: the columns a renewal writes
RENEWAL_FIELDS = (*APPLIED_FIELDS, "base_values", "refreshed_at", "authorized_at", "updated_at")


class BatchStore(Protocol):
    """Where renewals inside :func:`storing_under` store: a proactive batch's lease
    (flows/proactive_batch.py), which writes each row its own way and the events at once."""

    events: list[Event]

    def store(self, token: Token) -> None: ...


_batch: ContextVar[BatchStore | None] = ContextVar("oauthconn_batch", default=None)


@contextmanager
def storing_under(batch: BatchStore) -> Iterator[None]:
    """Renewals in this block store through ``batch`` (no transaction of their own)."""
    reset = _batch.set(batch)
    try:
        yield
    finally:
        _batch.reset(reset)


def store_renewal(token: Token, tokens: TokenSet) -> None:
    """Put a renewal's tokens on the row and record its events: in the caller's transaction,
    or under a proactive batch (:class:`BatchStore`), which stores and records them its way."""
    events = _apply_renewal(token, tokens)
    batch = _batch.get()
    if batch is None:
        _save_renewal(token, events)
        return
    batch.store(token)
    batch.events += events


def _apply_renewal(token: Token, tokens: TokenSet) -> list[Event]:
    """Copy ``tokens`` onto ``token`` (not saved); the events the change calls for."""
    recovering = token.status == TokenStatus.FAILING
    first = token.access_token is None
    # R39: a refreshed ID token replaces the original only once verified against it
    # (verify_refreshed_id_token); a grant that never had a validated one keeps none.
    kept = tokens if token.subject else replace(tokens, id_token=None)
    apply_token_set(token, kept, keep_refresh_token=True)
    token.refreshed_at = timezone.now()
    if first:
        token.authorized_at = token.refreshed_at
        token.scope = tokens.scope or token.connection.scopes
    kind = EventKind.AUTHORIZED if first else EventKind.REFRESHED
    # R62: a refused {token:...} value (an instance_url to a private address) keeps the old
    # one and is told in the event; the new, valid access token is stored all the same.
    token.base_values, refused = renewed_values(
        token.connection.api_base_url, token.base_values, tokens.extra
    )
    message = f"{_NEW} {refused}" if refused else _NEW
    events = [new_event(kind, token.connection, token=token, message=message, **renewer())]
    if recovering:
        events.append(
            new_event(
                EventKind.RECOVERED, token.connection, token=token, message=_AGAIN, **renewer()
            )
        )
    return events


_NEW, _AGAIN = "New access token obtained.", "The provider answered again."


@_in_callers_transaction
def _save_renewal(token: Token, events: list[Event]) -> None:
    # Only what changed: the row's other columns (lease, revocation flag) are not ours.
    token.save(update_fields=RENEWAL_FIELDS)
    record_events(events, actor=renewer()["actor"])


@_in_callers_transaction
def mark_needs_reauth(
    token: Token, error: OAuthConnError, cause: Exception | None = None
) -> Outcome:
    token.status = TokenStatus.NEEDS_REAUTH
    token.last_error = str(error)
    token.last_error_code = getattr(cause, "code", error.code)
    token.next_attempt_at = None
    token.save(
        update_fields=["status", "last_error", "last_error_code", "next_attempt_at", "updated_at"]
    )
    record_event(
        EventKind.NEEDS_REAUTH,
        token.connection,
        token=token,
        message=str(error),
        error=error,
        code=token.last_error_code,
        **renewer(),
    )
    if cause is not None:
        error.__cause__ = cause
    return Outcome(token, error)


_FAILING_FIELDS = (
    "failure_count",
    "status",
    "last_error",
    "last_error_code",
    "next_attempt_at",
    "refresh_token",
    "refresh_expires_at",
    "updated_at",
)


@_in_callers_transaction
def mark_failing(
    token: Token, err: OAuthConnError, *, new_refresh_token: str | None = None
) -> Outcome:
    token.failure_count += 1
    delay = backoff_delay(token.failure_count, getattr(err, "retry_after", None))
    token.status = TokenStatus.FAILING
    token.last_error = str(err)
    token.last_error_code = err.code
    token.next_attempt_at = timezone.now() + timedelta(seconds=delay)
    message = str(err)
    if new_refresh_token:
        # A provider that rotates has already invalidated the old one: the next attempt
        # must use this one, or the grant is lost.
        token.refresh_token = new_refresh_token
        token.refresh_expires_at = None  # whatever was announced was for the old one
        message += "; the new refresh token it sent was kept for the next attempt."
    token.save(update_fields=_FAILING_FIELDS)
    record_event(
        EventKind.REFRESH_FAILED,
        token.connection,
        token=token,
        message=message,
        error=err,
        code=err.code,
        failures=token.failure_count,
        retry_in=round(delay),
        kept_new_refresh_token=bool(new_refresh_token),
        **renewer(),
    )
    error = TemporarilyUnavailable(str(err), retry_after=delay)
    error.__cause__ = err
    return serve_while_failing(token, error)


def serve_while_failing(token: Token, error: TemporarilyUnavailable) -> Outcome:
    """A transient failure never costs a valid token: serve it until it really expires."""
    if token.access_token is not None and not token.expires_within(0):
        return Outcome(token)
    return Outcome(token, error)


def backoff_delay(failures: int, retry_after: float | None = None) -> float:
    """Backoff of a failing renewal or revocation; a provider's Retry-After wins up to the cap."""
    return jittered_backoff(failures, base=BACKOFF_BASE, cap=BACKOFF_CAP, retry_after=retry_after)

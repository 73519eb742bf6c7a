"""Pieces every flow shares: client credentials, token parameters, events and signals."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

from oauthconn import http, signals
from oauthconn.conf import oauthconn_settings
from oauthconn.crypto import Sealed
from oauthconn.models import Connection, Event, EventKind, Token, TokenStatus
from oauthconn.notifications.outbox import enqueue_for_event
from oauthconn.oauth.client_auth import ClientCredentials
from oauthconn.oauth.token_response import TokenSet

if TYPE_CHECKING:
    from oauthconn.types import Actor

logger = logging.getLogger("oauthconn")

SIGNAL_FOR_EVENT: dict[str, Signal] = {
    EventKind.AUTHORIZED: signals.authorized,
    EventKind.REFRESHED: signals.refreshed,
    EventKind.REFRESH_FAILED: signals.refresh_failed,
    EventKind.NEEDS_REAUTH: signals.needs_reauthorization,
    EventKind.RECOVERED: signals.recovered,
    EventKind.REVOKED: signals.revoked,
}


def credentials_for(connection: Connection) -> ClientCredentials:
    """How ``connection`` authenticates; for private_key_jwt the assertion's audience is the
    issuer when known (R49, see oauthconn.oauth.assertion), else the endpoint called."""
    return ClientCredentials(
        client_id=connection.client_id,
        client_secret=Sealed.reveal_optional(connection.client_secret),
        method=connection.client_auth_method,
        private_key=Sealed.reveal_optional(connection.private_key),
        private_key_id=connection.private_key_id,
        assertion_audience=connection.provider.issuer,
    )


def token_limits(connection: Connection) -> dict[str, Any]:
    """Keyword arguments for the token requests: fallback and maximum lifetimes."""
    return {
        "default_lifetime": connection.token_lifetime or oauthconn_settings.DEFAULT_TOKEN_LIFETIME,
        "max_lifetime": oauthconn_settings.MAX_TOKEN_LIFETIME,
    }


def record_event(
    kind: str,
    connection: Connection,
    *,
    token: Token | None = None,
    actor: Actor = None,
    message: str = "",
    error: Exception | None = None,
    send_signal: bool = True,
    **data: Any,
) -> Event:
    """Write an audit row and send the matching signal once the transaction commits."""
    event = new_event(kind, connection, token=token, actor=actor, message=message, **data)
    event.save()
    _after_writing(event, actor=actor, error=error, send_signal=send_signal)
    return event


def new_event(
    kind: str,
    connection: Connection,
    *,
    token: Token | None = None,
    actor: Actor = None,
    message: str = "",
    **data: Any,
) -> Event:
    """The unsaved audit row :func:`record_event` writes (:func:`record_events` in bulk)."""
    return Event(
        connection=connection,
        token=token,
        owner=token.owner if token is not None else None,
        owner_key=token.owner_key if token is not None else "",
        kind=kind,
        actor=actor if actor is not None and actor.is_authenticated else None,
        message=message,
        data=data,
    )


def record_events(
    events: list[Event],
    *,
    actor: Actor = None,
    insert: Callable[[list[Event]], object] | None = None,
) -> None:
    """:func:`record_event` for many rows made by :func:`new_event`: one INSERT for all of
    them (``insert``, else ``bulk_create``), then each one's outbox rows, log line and
    signal, as record_event does."""
    if not events:
        return
    (insert or Event.objects.bulk_create)(events)
    for event in events:
        _after_writing(event, actor=actor, error=None, send_signal=True)


def _after_writing(
    event: Event, *, actor: Actor, error: Exception | None, send_signal: bool
) -> None:
    # In the caller's transaction, so the outbox row commits with the state change.
    enqueue_for_event(event)
    logger.info(
        "oauthconn %s: connection=%s owner=%s %s",
        event.kind,
        event.connection.slug,
        event.owner_key or getattr(event.owner, "pk", None),
        event.message,
    )
    if send_signal:
        _signal_after_commit(event, actor=actor, error=error)


def _signal_after_commit(event: Event, *, actor: Actor, error: Exception | None) -> None:
    """Send the signal of ``event``'s kind, if it has one, once the transaction commits."""
    signal = SIGNAL_FOR_EVENT.get(event.kind)
    if signal is None:
        return
    kwargs: dict[str, object] = {
        "connection": event.connection,
        "token": event.token,
        "owner": event.owner,
        "owner_key": event.owner_key,
        "actor": actor,
        "event": event,
    }
    if error is not None:
        kwargs["error"] = error
    transaction.on_commit(lambda: signal.send(sender=Connection, **kwargs))


def lock_token(pk: int, *, timeout: float | None = None) -> Token:
    """Re-read a token row under a lock that holds until the transaction ends.

    PostgreSQL and MySQL take a row lock. SQLite ignores ``SELECT … FOR UPDATE``; an UPDATE
    takes its database-wide write lock instead, which serializes refreshes just as well there.
    ``timeout`` (seconds) bounds the wait on PostgreSQL: past it the database raises
    ``OperationalError`` (SQLite's own busy timeout applies there).
    """
    queryset = Token.objects.select_related("connection__provider", "owner")
    if not db_connection.features.has_select_for_update:
        Token.objects.filter(pk=pk).update(updated_at=timezone.now())
        return queryset.get(pk=pk)
    with _lock_timeout(timeout):
        return queryset.select_for_update(of=("self",)).get(pk=pk)


def try_lock_token(pk: int) -> Token | None:
    """Like :func:`lock_token`, but ``None`` at once when another transaction holds the row.

    Several copies of the proactive refresh skip each other's rows instead of queueing. SQLite
    cannot skip a locked row; its writes are serialized, so this waits there.
    """
    if not db_connection.features.has_select_for_update_skip_locked:
        return lock_token(pk)
    queryset = Token.objects.select_related("connection__provider", "owner")
    return queryset.select_for_update(of=("self",), skip_locked=True).filter(pk=pk).first()


@contextmanager
def _lock_timeout(seconds: float | None) -> Iterator[None]:
    # A transaction-local setting, restored afterwards so a caller's outer transaction keeps
    # its own lock_timeout for whatever it does next. After a failed wait the (sub)transaction
    # is rolled back, which undoes the setting, and the aborted transaction takes no query.
    if seconds is None or db_connection.vendor != "postgresql":
        yield
        return
    with db_connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)",
            [f"{max(int(seconds * 1000), 1)}ms"],
        )
        previous = cursor.fetchone()[0]
    yield
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])


#: seconds a SQLite lease outlives the requests made under it (a dead worker's lease ends)
LEASE_MARGIN = 10.0


def lease_seconds(pk: int) -> float:
    """How long a SQLite lease on row ``pk`` lasts: every request a renewal may make under
    it, each bounded by ``REQUEST_DEADLINE``, plus :data:`LEASE_MARGIN`.

    That is the token request, and for a grant with a validated ID token (it has a
    ``subject``) whose provider publishes a JWKS, the JWKS fetch and the one refetch an
    unknown key id may cause (:mod:`oauthconn.oauth.jwks`): three requests. A lease shorter
    than the work lets a second process refresh meanwhile and spend a rotated refresh token.
    """
    row = (
        Token.objects.filter(pk=pk).values_list("subject", "connection__provider__jwks_uri").first()
    )
    return lease_for(*(row or ("", None))) + LEASE_MARGIN


def lease_for(subject: str, jwks_uri: str | None) -> float:
    """Seconds the requests of one renewal may take (see :func:`lease_seconds`), no margin."""
    requests = 3 if subject and jwks_uri else 1
    return requests * float(oauthconn_settings.REQUEST_DEADLINE)


def claim_lease(pk: int, seconds: float) -> datetime | None:
    """SQLite's stand-in for a row lock: mark the row as being renewed for ``seconds``.

    SQLite has one write lock for the whole database; holding it through a token request
    would stall every other writer of the site (sessions, a provider in the same database)
    for as long as the provider takes. So the claim is a short committed UPDATE of the
    token's own ``lease_until`` column; the backoff (``next_attempt_at``) is a separate
    decision that the renewal checks under the lease. Returns the lease's end, or None when
    another worker's lease is still running.
    """
    now = timezone.now()
    until = now + timedelta(seconds=seconds)
    free = Q(lease_until__isnull=True) | Q(lease_until__lte=now)
    return until if Token.objects.filter(free, pk=pk).update(lease_until=until) else None


def release_lease(pk: int, until: datetime) -> None:
    """End a lease unless it is no longer this one (it ran out and another worker took it)."""
    Token.objects.filter(pk=pk, lease_until=until).update(lease_until=None)


#: the columns :func:`apply_token_set` may change, for ``save(update_fields=...)``
APPLIED_FIELDS = (
    "access_token",
    "refresh_token",
    "refresh_expires_at",
    "id_token",
    "dpop_key",
    "token_type",
    "expires_at",
    "lifetime",
    "scope",
    "status",
    "last_error",
    "last_error_code",
    "failure_count",
    "next_attempt_at",
)


def apply_token_set(token: Token, tokens: TokenSet, *, keep_refresh_token: bool) -> None:
    """Copy a validated token response onto the row (the caller saves, in its transaction).

    A refresh response without a refresh token keeps the old one (RFC 6749 §6).
    """
    token.access_token = tokens.access_token
    if tokens.refresh_token or not keep_refresh_token:
        token.refresh_token = tokens.refresh_token
        token.refresh_expires_at = tokens.refresh_expires_at
    elif tokens.refresh_expires_at is not None:
        # Sliding expiry (Keycloak's refresh_expires_in): the kept refresh token lives longer.
        token.refresh_expires_at = tokens.refresh_expires_at
    if tokens.id_token:
        token.id_token = tokens.id_token
    # R53: the key goes with the tokens bound to it; a new grant without DPoP drops the old one.
    if tokens.dpop_key or not keep_refresh_token:
        token.dpop_key = tokens.dpop_key
    token.token_type = tokens.token_type
    token.expires_at = tokens.expires_at
    token.lifetime = tokens.lifetime
    if tokens.scope is not None:
        token.scope = tokens.scope
    token.status = TokenStatus.ACTIVE
    token.last_error = ""
    token.last_error_code = ""
    token.failure_count = 0
    token.next_attempt_at = None


# --- one HTTP client per worker ----------------------------------------------------------------

_bound = threading.local()


@contextmanager
def outbound_client() -> Iterator[httpx.Client]:
    """The HTTP client for a flow's request: the worker's own if it keeps one, else a new one."""
    client = getattr(_bound, "client", None)
    if client is not None:
        yield client
        return
    with http.build_client() as client:
        yield client


@contextmanager
def reusing_outbound_client() -> Iterator[None]:
    """Let every flow in this thread share one client (and its kept-alive connections).

    For batch work such as the proactive refresh: a new client per token request would open a
    new TCP (and TLS) connection to the provider every time.
    """
    if getattr(_bound, "client", None) is not None:
        yield  # an outer batch already shares one
        return
    # No cookies: the batch's requests serve many grants, and a cookie one grant's token
    # response set must not go out with the next grant's request.
    with http.build_client(cookies=http.NoCookies()) as client:
        _bound.client = client
        try:
            yield
        finally:
            _bound.client = None

"""Valid access tokens on demand: single-flight refresh and client credentials (RFC 6749 §6, §4.4).

One refresh per token at a time, across threads (a process-local lock, so waiting threads
hold no database transaction) and across processes and hosts (a row lock on PostgreSQL,
re-read after locking: whoever waited finds the new token and sends nothing; a short lease in
``Token.lease_until`` on SQLite, whose one write lock must not be held over the network).
Waiting too long for either raises :class:`~oauthconn.exceptions.Busy`. See docs/lifecycle.md.

Health (``Token.status``): ``active``; ``failing`` after a temporary failure (network,
timeout, 5xx, 429, a malformed answer), retried with capped backoff (``Token.next_attempt_at``)
that honours Retry-After while a still-valid access token keeps being served;
``needs_reauth`` after a permanent one (``invalid_grant``, ``invalid_client``, ...; the
classification is :func:`~oauthconn.exceptions.is_permanent`), never retried; ``revoked``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from django.db import OperationalError, transaction
from django.db import connection as db_connection
from django.utils import timezone

from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import (
    Busy,
    DecryptionFailed,
    IdentityChanged,
    InvalidIDToken,
    InvalidProviderResponse,
    NotConnected,
    OAuthConnError,
    ProviderError,
    ReauthorizationRequired,
    TemporarilyUnavailable,
    TransportError,
    is_permanent,
)
from oauthconn.flows.common import (
    claim_lease,
    credentials_for,
    lease_seconds,
    lock_token,
    outbound_client,
    release_lease,
    token_limits,
    try_lock_token,
)
from oauthconn.flows.dpop import binding_for
from oauthconn.flows.identity import verify_refreshed_id_token
from oauthconn.flows.outcomes import (  # noqa: F401 - BACKOFF_CAP, backoff_delay re-exported
    BACKOFF_CAP,
    Outcome,
    backoff_delay,
    mark_failing,
    mark_needs_reauth,
    serve_while_failing,
    store_renewal,
)
from oauthconn.models import Connection, GrantType, Token, TokenStatus
from oauthconn.models.owners import is_user, owner_fields, owner_key
from oauthconn.oauth.token import client_credentials_grant, refresh_token_grant
from oauthconn.oauth.token_response import TokenSet

if TYPE_CHECKING:
    from datetime import datetime

    from oauthconn.crypto import Sealed
    from oauthconn.types import Owner

BUSY = "Timed out waiting for another worker's refresh of this connection."

_locks_guard = threading.Lock()
# Weak values: an entry lives exactly as long as some thread holds or waits on its lock
# (each keeps a strong reference from _local_lock until renew() returns), so the map does not
# grow by one lock per (connection, owner) ever seen. A lock in use is never dropped, so two
# threads can never get different locks for the same key at the same time.
_locks: weakref.WeakValueDictionary[tuple[int, Any, str], threading.Lock] = (
    weakref.WeakValueDictionary()
)


def _local_lock(connection: Connection, owner: Owner) -> threading.Lock:
    # a user's pk, or a keyed owner's key: a team and a user with the same pk never share
    key = (connection.pk, getattr(owner, "pk", None) if is_user(owner) else None, owner_key(owner))
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = threading.Lock()
        return lock


def load_token(connection: Connection, owner: Owner = None) -> Token | None:
    """``owner``'s grant of ``connection``; ConfigurationError for an owner of the wrong kind."""
    return Token.objects.grant_of(connection, owner).first()


def get_valid_token(
    connection: Connection, owner: Owner = None, *, force: bool = False, stale: Token | None = None
) -> Token:
    """Return a token whose access token does not need a refresh (``Token.needs_refresh``).

    ``force`` renews even an unexpired token (after a 401), unless another worker already
    replaced ``stale``. Raises ``NotConnected``, ``ReauthorizationRequired`` or
    ``TemporarilyUnavailable``.
    """
    token = load_token(connection, owner)
    if connection.grant_type == GrantType.CLIENT_CREDENTIALS and _never_fetched(token):
        return renew(connection, owner, stale=token)
    if token is None:
        raise NotConnected()
    raise_if_unusable(token)
    if force:
        return renew(connection, owner, stale=stale or token, force=True)
    if not token.needs_refresh():
        return token
    return renew(connection, owner, stale=token)


@dataclass(frozen=True)
class Renewal:
    """What "Refresh now" did: ``renewed`` is False when the flow served the old token
    (backing off after a failure, another worker's lease), and ``reason`` says why."""

    token: Token
    renewed: bool
    reason: str = ""
    retry_after: float | None = None
    #: True when it was another worker's renewal in progress, not a failing provider
    busy: bool = False

    def unavailable(self) -> TemporarilyUnavailable:
        """The error for a caller that asked for a new token and got none: ``Busy`` when
        another worker is renewing, else ``TemporarilyUnavailable``."""
        cls = Busy if self.busy else TemporarilyUnavailable
        return cls(f"Nothing was renewed: {self.reason}", retry_after=self.retry_after)


def renew_now(connection: Connection, owner: Owner = None) -> Renewal:
    """Renew at a person's request (admin, API, the user's page) and say honestly whether
    anything was renewed: a forced renewal may serve the still-valid old token instead.

    Raises like :func:`renew`.
    """
    before = _ciphertext(load_token(connection, owner))
    token = renew(connection, owner, force=True)
    if before is not None and _ciphertext(token) == before:
        why = _why_not_renewed(token)
        return Renewal(
            token,
            renewed=False,
            reason=str(why),
            retry_after=why.retry_after,
            busy=isinstance(why, Busy),
        )
    return Renewal(token, renewed=True)


def _never_fetched(token: Token | None) -> bool:
    return token is None or token.never_fetched


def raise_if_unusable(token: Token) -> None:
    """Why ``token`` cannot serve (``Token.is_usable``), as the exception callers expect."""
    if token.is_usable:
        return
    if token.status == TokenStatus.NEEDS_REAUTH:
        raise ReauthorizationRequired(token.last_error or None)
    raise NotConnected()


def renew(
    connection: Connection, owner: Owner = None, *, stale: Token | None = None, force: bool = False
) -> Token:
    """Refresh (or fetch a client credentials token) once, whoever else asks at the same time."""
    lock = _local_lock(connection, owner)
    if not lock.acquire(timeout=oauthconn_settings.LOCK_TIMEOUT):
        raise Busy(BUSY)
    try:
        current = load_token(connection, owner)
        if current is None:
            current, _ = Token.objects.get_or_create(connection=connection, **owner_fields(owner))
        elif _still_fresh(current, stale, force):
            return current
        elif _backoff_remaining(current):
            # Backing off (Retry-After, capped exponential): no lock, no request.
            return _finish(serve_while_failing(current, _backing_off(current)))
        outcome = _renew_locked(current.pk, stale, force)
    finally:
        lock.release()
    return _finish(outcome)


def _finish(outcome: Outcome) -> Token:
    if outcome.error is not None:
        raise outcome.error
    return outcome.token


def _still_fresh(token: Token, stale: Token | None, force: bool) -> bool:
    """True when someone else renewed since ``stale`` was read, or nothing needs doing."""
    if not token.is_usable:
        return False
    if stale is not None and _ciphertext(stale) != _ciphertext(token):
        return True
    return not force and not token.needs_refresh()


def _ciphertext(token: Token | None) -> str | None:
    if token is None or token.access_token is None:
        return None
    return token.access_token.ciphertext


def _renew_locked(pk: int, stale: Token | None, force: bool) -> Outcome:
    # Status changes must commit even when the caller gets an exception, so the error is
    # returned out of the transaction and raised after it.
    try:
        with exclusively(pk, wait=True) as token:
            if token is not None:
                return renew_locked_token(token, stale=stale, force=force)
    except OperationalError as err:
        # PostgreSQL's lock_timeout or SQLite's busy timeout: someone holds the row too long.
        error = Busy(BUSY)
        error.__cause__ = err
        return Outcome(load_token_by_pk(pk), error)
    # Another process holds the lease (SQLite, or a proactive batch). Its result may be there.
    token = load_token_by_pk(pk)
    if _still_fresh(token, stale, force):
        return Outcome(token)
    return serve_while_failing(token, _held_elsewhere(token))


@contextmanager
def exclusively(pk: int, *, wait: bool) -> Iterator[Token | None]:
    """The right to renew row ``pk``: yields it re-read, or None if another worker has it.

    PostgreSQL (and MySQL): a row lock for the whole renewal, so whoever waits finds the
    result; ``wait=False`` skips a locked row instead; a row a proactive batch leased is None.
    SQLite: a lease (``claim_lease``), never waited on; the process-local lock queues threads.
    """
    if db_connection.features.has_select_for_update:
        with transaction.atomic():
            timeout = oauthconn_settings.LOCK_TIMEOUT
            token = lock_token(pk, timeout=timeout) if wait else try_lock_token(pk)
            # A proactive batch's lease (flows/proactive_batch.py): its request may be in
            # flight with this refresh token, and it holds no row lock meanwhile.
            yield None if token is not None and _seconds_until(token.lease_until) else token
        return
    until = claim_lease(pk, lease_seconds(pk))
    if until is None:
        yield None
        return
    token = None
    try:
        token = load_token_by_pk(pk)
        yield token
    finally:
        release_lease(pk, until)
        if token is not None:
            token.lease_until = None  # as in the database now (renew_now reads it)


def load_token_by_pk(pk: int) -> Token:
    return Token.objects.select_related("connection__provider", "owner").get(pk=pk)


def renew_locked_token(token: Token, *, stale: Token | None = None, force: bool = False) -> Outcome:
    """Renew ``token``, which the caller holds (:func:`exclusively`) and has just re-read."""
    if _still_fresh(token, stale, force):
        return Outcome(token)
    connection = token.connection
    if token.status == TokenStatus.NEEDS_REAUTH:
        return Outcome(token, ReauthorizationRequired(token.last_error or None))
    is_client_credentials = connection.grant_type == GrantType.CLIENT_CREDENTIALS
    if token.status == TokenStatus.REVOKED or (
        token.access_token is None and not is_client_credentials
    ):
        return Outcome(token, NotConnected())  # disconnected while we waited for the lock
    if _backoff_remaining(token):
        return serve_while_failing(token, _backing_off(token))
    if is_client_credentials:
        return _request(token, lambda client: _client_credentials(client, token))
    refresh_token = token.refresh_token
    if refresh_token is None:
        error = ReauthorizationRequired(
            "Reauthorize the connection: the access token expired and the provider gave no "
            "refresh token."
        )
        return mark_needs_reauth(token, error)
    return _request(token, lambda client: _refresh(client, token, refresh_token))


def _seconds_until(moment: datetime | None) -> float:
    if moment is None:
        return 0.0
    return max((moment - timezone.now()).total_seconds(), 0.0)


def _backoff_remaining(token: Token) -> float:
    return _seconds_until(token.next_attempt_at)


def _backing_off(token: Token) -> TemporarilyUnavailable:
    """The error while a failing grant waits for its next attempt (``next_attempt_at``)."""
    waiting = _backoff_remaining(token)
    reason = token.last_error or TemporarilyUnavailable.message
    return TemporarilyUnavailable(f"{reason} Next attempt in {waiting:.0f} s.", retry_after=waiting)


def _held_elsewhere(token: Token) -> Busy:
    """The error while another process holds the SQLite lease (``lease_until``)."""
    waiting = _seconds_until(token.lease_until)
    message = f"Another worker is refreshing this connection. Next attempt in {waiting:.0f} s."
    return Busy(message, retry_after=waiting)


def _why_not_renewed(token: Token) -> TemporarilyUnavailable:
    if _seconds_until(token.lease_until):
        return _held_elsewhere(token)
    return _backing_off(token)


def _refresh(client: httpx.Client, token: Token, refresh_token: Sealed) -> TokenSet:
    connection = token.connection
    return refresh_token_grant(
        client,
        connection.provider.token_endpoint,
        refresh_token=refresh_token.reveal(),
        credentials=credentials_for(connection),
        extra_params=connection.token_params,
        # A DPoP refresh token is bound to the grant's key (RFC 9449 §5): always that one.
        dpop=binding_for(connection, token),
        **token_limits(connection),
    )


def _client_credentials(client: httpx.Client, token: Token) -> TokenSet:
    connection = token.connection
    return client_credentials_grant(
        client,
        connection.provider.token_endpoint,
        credentials=credentials_for(connection),
        scope=connection.scope_string,
        extra_params=connection.token_params,
        dpop=binding_for(connection, token),
        **token_limits(connection),
    )


def _request(token: Token, send: Callable[[httpx.Client], TokenSet]) -> Outcome:
    sent_refresh_token = token.refresh_token
    tokens: TokenSet | None = None
    try:
        with outbound_client() as client:
            tokens = send(client)
            verify_refreshed_id_token(client, token, tokens)
    except (ProviderError, TransportError, DecryptionFailed, InvalidIDToken) as err:
        if is_permanent(err):
            return _grant_rejected(token, sent_refresh_token, err)
        # DecryptionFailed: a key was removed too early; once it is back the next attempt
        # works. InvalidIDToken (R39): the response is refused whole and the grant kept as it
        # was, except a new refresh token (see mark_failing).
        return mark_failing(token, err, new_refresh_token=_issued_refresh_token(err, tokens))
    store_renewal(token, tokens)
    return Outcome(token)


def _grant_rejected(
    token: Token, sent_refresh_token: Sealed | None, err: OAuthConnError
) -> Outcome:
    """A permanent failure: the grant needs reauthorization (unless someone else won)."""
    if isinstance(err, IdentityChanged):
        # Its tokens (a new refresh token too) belong to that other account's grant: none
        # of them is stored, and no other worker's rotation can make it ours.
        return mark_needs_reauth(token, ReauthorizationRequired(str(err)), cause=err)
    winner = _rotated_by_someone_else(token, sent_refresh_token)
    if winner is not None:
        return Outcome(winner)
    message = f"Reauthorize the connection: {err}"
    return mark_needs_reauth(token, ReauthorizationRequired(message), cause=err)


def _issued_refresh_token(err: OAuthConnError, tokens: TokenSet | None) -> str | None:
    """The refresh token a refused response carried (defect 11): the parse error's salvage,
    or the one of a parsed response whose ID token failed."""
    if isinstance(err, InvalidProviderResponse) and err.salvaged_refresh_token:
        return err.salvaged_refresh_token
    return tokens.refresh_token if tokens is not None else None


def _rotated_by_someone_else(token: Token, sent: Sealed | None) -> Token | None:
    """After ``invalid_grant``: did another worker rotate the refresh token meanwhile?

    Under our row lock nobody should have, but a worker that does not take the lock (an
    older deployment, a script) may have won the race; then its token is the answer and the
    grant is not broken (SECURITY R37: re-read the DB before giving up).
    """
    current = Token.objects.filter(pk=token.pk).first()
    if current is None or current.refresh_token is None or sent is None:
        return None
    if current.refresh_token.reveal() == sent.reveal():
        return None
    usable = current.status == TokenStatus.ACTIVE and current.access_token is not None
    return current if usable and not current.expires_within(0) else None

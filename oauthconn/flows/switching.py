"""Holding a reauthorization by another account until the person confirms it (defect 7b).

A reauthorization whose validated ID token names another account (``sub``) than the grant it
would replace is not stored at once: its token response waits, encrypted, in a
``PendingSwitch`` row bound to the attempt's browser and user, for ``STATE_LIFETIME``
seconds, until the person answers once. Meanwhile the old grant keeps working. This module
keeps and takes those rows; :mod:`oauthconn.flows.switch` answers them.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import DecryptionFailed, SwitchAlreadyUsed, SwitchExpired, SwitchNotFound
from oauthconn.flows.identity import Identity
from oauthconn.flows.revocation import queue_revocations, revoke_unstored
from oauthconn.models import Connection, PendingAuthorization, PendingSwitch, Token
from oauthconn.oauth.token_response import TokenSet

if TYPE_CHECKING:
    from oauthconn.types import Owner, RequestUser

logger = logging.getLogger("oauthconn")

_DATETIMES = ("expires_at", "refresh_expires_at")


@dataclass(frozen=True)
class HeldSwitch:
    """What completing an authorization gives instead of a grant when the person must choose:
    the key of the confirmation page (a random capability, not a token) and its row."""

    key: str = field(repr=False)
    switch: PendingSwitch

    @property
    def connection(self) -> Connection:
        return self.switch.connection


def switching_from(connection: Connection, owner: Owner, identity: Identity | None) -> Token | None:
    """The connected grant that this authorization would hand to another account, or None.

    None for a first authorization, the same account again, a grant without a validated
    subject, and a disconnected grant (there is nothing left to keep).
    """
    if identity is None:
        return None
    token = Token.objects.filter(connection=connection).for_owner(owner).first()
    if token is None or not token.is_connected or token.subject in ("", identity.subject):
        return None
    return token


def hold_switch(
    attempt: PendingAuthorization,
    tokens: TokenSet,
    identity: Identity,
    old: Token,
    *,
    base_values: Mapping[str, str] | None = None,
) -> HeldSwitch:
    """Keep ``tokens`` encrypted until the person of ``attempt`` confirms or declines."""
    key = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        forget_expired_switches(now)
        switch = PendingSwitch.objects.create(
            key_hash=PendingAuthorization.hash(key),
            browser_hash=attempt.browser_hash,
            connection=attempt.connection,
            owner_id=attempt.owner_id,
            owner_key=attempt.owner_key,
            user_id=attempt.user_id,
            tokens=dump_token_set(tokens),
            old_subject=old.subject,
            old_claims=old.claims,
            subject=identity.subject,
            claims=identity.claims,
            return_to=attempt.return_to,
            base_values=dict(base_values or {}),
            created_at=now,
            expires_at=now + timedelta(seconds=oauthconn_settings.STATE_LIFETIME),
        )
    logger.info("oauthconn switch held: connection=%s", attempt.connection.slug)
    return HeldSwitch(key, switch)


def find_switch(key: str, *, binding: str | None, user: RequestUser) -> PendingSwitch:
    """The unanswered switch ``key`` names for this browser and user (the page shows it)."""
    switch = _lookup(key, binding=binding, user=user)
    if switch.consumed_at is not None:
        raise SwitchAlreadyUsed(slug=switch.connection.slug)
    if switch.expires_at <= timezone.now():
        raise SwitchExpired(slug=switch.connection.slug)
    return switch


def take_switch(
    key: str, *, binding: str | None, user: RequestUser
) -> tuple[PendingSwitch, TokenSet]:
    """Answer the switch ``key`` names, once: the tokens leave the row with the update that
    marks it answered (two parallel answers: only one update matches). An expired switch is
    discarded (its tokens revoked) and refused."""
    switch = _lookup(key, binding=binding, user=user)
    now = timezone.now()
    taken = PendingSwitch.objects.filter(pk=switch.pk, consumed_at__isnull=True).update(
        consumed_at=now, tokens=None
    )
    if not taken or switch.tokens is None:
        raise SwitchAlreadyUsed(slug=switch.connection.slug)
    tokens = load_token_set(switch.tokens.reveal())
    if switch.expires_at <= now:
        discard(switch.connection, tokens)
        raise SwitchExpired(slug=switch.connection.slug)
    return switch, tokens


def _lookup(key: str, *, binding: str | None, user: RequestUser) -> PendingSwitch:
    found = PendingSwitch.objects.select_related("connection__provider", "owner")
    switch = found.filter(key_hash=PendingAuthorization.hash(key)).first() if key else None
    if (
        switch is None
        or binding is None
        or not secrets.compare_digest(switch.browser_hash, binding)
        or switch.user_id != getattr(user, "pk", None)
    ):
        raise SwitchNotFound()
    return switch


def discard(connection: Connection, tokens: TokenSet) -> bool | None:
    """Revoke the tokens of a switch that will not be used (best effort; see revoke_unstored)."""
    return revoke_unstored(connection, revocable(tokens))


def revocable(tokens: TokenSet) -> list[tuple[str, str]]:
    """``(value, hint)`` pairs, refresh token first: revoking it usually ends the grant."""
    pairs = [(tokens.refresh_token, "refresh_token"), (tokens.access_token, "access_token")]
    return [(value, hint) for value, hint in pairs if value]


def forget_expired_switches(now: datetime) -> None:
    """Delete expired switches; tokens nobody answered for go to ``oauthconn_revoke_pending``
    (due at once), so no network call happens here."""
    expired = PendingSwitch.objects.filter(expires_at__lte=now)
    for switch in expired.filter(tokens__isnull=False).select_related("connection__provider"):
        # tokens__isnull=False above already holds; the check tells mypy and costs nothing.
        if switch.tokens is None or not switch.connection.provider.revocation_endpoint:
            continue
        try:
            tokens = load_token_set(switch.tokens.reveal())
        except DecryptionFailed:  # the key was retired since: nothing left to revoke with
            continue
        queue_revocations(switch.connection, revocable(tokens), at=now)
    expired.delete()


def dump_token_set(tokens: TokenSet) -> str:
    """The token response as JSON (the caller encrypts it: it holds tokens)."""
    data = asdict(tokens)
    for name in _DATETIMES:
        data[name] = data[name].isoformat() if data[name] else None
    return json.dumps(data)


def load_token_set(text: str) -> TokenSet:
    data = json.loads(text)
    for name in _DATETIMES:
        data[name] = datetime.fromisoformat(data[name]) if data[name] else None
    return TokenSet(**data)

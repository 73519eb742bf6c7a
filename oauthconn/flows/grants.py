"""Store a new grant: the one place an authorization's tokens land on the owner's row.

Called when a callback completes (:mod:`oauthconn.flows.authorization`), when a held account
switch is confirmed (:mod:`oauthconn.flows.switch`) and by the test kit. All or nothing: the
row, its events and the scopes it records change together, or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from oauthconn.base_url import values_for_grant
from oauthconn.flows import scopes
from oauthconn.flows.common import apply_token_set, record_event
from oauthconn.flows.identity import Identity, describe_account
from oauthconn.models import Connection, EventKind, Token, TokenStatus
from oauthconn.models.owners import owner_fields
from oauthconn.oauth.token_response import TokenSet

if TYPE_CHECKING:
    from oauthconn.types import Actor, Owner


def store_grant(
    connection: Connection,
    tokens: TokenSet,
    *,
    owner: Owner = None,
    actor: Actor = None,
    identity: Identity | None = None,
    requested: Sequence[str] | None = None,
    base_values: Mapping[str, str] | None = None,
) -> Token:
    """Save a new grant for an owner, all or nothing, and record the events.

    ``requested`` are the scopes the authorization asked for (the connection's when None):
    the event names those not granted, and those added to the grant before it.
    ``base_values``: the grant's API base URL values (:func:`values_for_grant`); when not
    given they come from the token response alone (GrantValueRefused if that is not enough).
    """
    if base_values is None:
        base_values = values_for_grant(connection.api_base_url, response=tokens.extra, asked={})
    with transaction.atomic():
        token, created = Token.objects.select_for_update().get_or_create(
            connection=connection, **owner_fields(owner)
        )
        was_broken = not created and token.status in (TokenStatus.NEEDS_REAUTH, TokenStatus.FAILING)
        # R34: (issuer, sub) names the account; another one was confirmed (flows.switch).
        switched = identity is not None and token.subject not in ("", identity.subject)
        before = describe_account(token.subject, token.claims) if switched else None
        held = token.granted_scopes if token.is_connected else None
        _apply_grant(token, tokens, connection, actor=actor, identity=identity)
        token.base_values = dict(base_values)
        token.save()
        message = authorized_message(
            connection, token, before=before, requested=requested, held=held
        )
        _record_authorized(connection, token, actor=actor, message=message, recovered=was_broken)
    return token


def _apply_grant(
    token: Token,
    tokens: TokenSet,
    connection: Connection,
    *,
    actor: Actor,
    identity: Identity | None,
) -> None:
    """Put a new grant on the row: its tokens, who authorized when, whose account it is."""
    apply_token_set(token, tokens, keep_refresh_token=False)
    if tokens.scope is None:
        token.scope = connection.scopes  # RFC 6749 §5.1: omitted means as requested
    token.authorized_by = actor if actor is not None and actor.is_authenticated else None
    token.authorized_at = timezone.now()
    token.refreshed_at = None
    token.revocation_pending = False
    if identity is not None:
        token.subject, token.claims = identity.subject, identity.claims


def authorized_message(
    connection: Connection,
    token: Token,
    *,
    before: str | None = None,
    requested: Sequence[str] | None = None,
    held: Sequence[str] | None = None,
) -> str:
    """The audit text of an authorization: scopes asked for (``requested``, else the
    connection's) but not granted, scopes the grant ``held`` before did not have, and, when
    another account than ``before`` authorized, from which account to which."""
    asked = connection.scope_list if requested is None else requested
    message = "Authorized." + scopes.describe_changes(asked, token.granted_scopes, held)
    if before is not None:
        account = describe_account(token.subject, token.claims)
        message += f" The account changed from {before} to {account}."
    return message


def _record_authorized(
    connection: Connection, token: Token, *, actor: Actor, message: str, recovered: bool
) -> None:
    record_event(
        EventKind.AUTHORIZED,
        connection,
        token=token,
        actor=actor,
        message=message,
        scopes=token.scope,
    )
    if recovered:
        record_event(
            EventKind.RECOVERED,
            connection,
            token=token,
            actor=actor,
            message="Recovered by a new authorization.",
        )

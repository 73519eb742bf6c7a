"""The person's answer to a reauthorization by another account (issue 10, defect 7b).

"Use the new account" stores the held tokens through the normal store path (events, signals,
notifications as for any authorization); "Keep the old account" revokes them at the provider
and leaves the old grant untouched. Either answer is accepted once, from the browser and user
that started the authorization, within ``STATE_LIFETIME``; using the new account needs the
same permission as starting an authorization (:mod:`oauthconn.flows.access`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.sessions.backends.base import SessionBase

from oauthconn.exceptions import NotPermitted
from oauthconn.flows.access import check_still_authorizes
from oauthconn.flows.authorization import browser_hash
from oauthconn.flows.common import record_event
from oauthconn.flows.grants import store_grant
from oauthconn.flows.identity import Identity, describe_account
from oauthconn.flows.switching import discard, find_switch, take_switch
from oauthconn.models import Connection, EventKind, PendingSwitch, Token

if TYPE_CHECKING:
    from oauthconn.types import RequestUser


@dataclass(frozen=True)
class SwitchAnswer:
    """What an answer did, for the page the person lands on."""

    connection: Connection
    return_to: str
    message: str
    #: False when something is left for people to do (revoke the new grant by hand)
    complete: bool = True


def pending_switch(key: str, *, user: RequestUser, session: SessionBase) -> PendingSwitch:
    """The switch the confirmation page asks about, or a ``SwitchRefused``."""
    return find_switch(key, binding=browser_hash(session, create=False), user=user)


def old_and_new(switch: PendingSwitch) -> tuple[str, str]:
    """Both accounts as people know them (display claims and subjects, never tokens)."""
    return (
        describe_account(switch.old_subject, switch.old_claims),
        describe_account(switch.subject, switch.claims),
    )


def confirm_switch(key: str, *, user: RequestUser, session: SessionBase) -> SwitchAnswer:
    """Replace the old grant with the new account's, as any authorization would store it."""
    switch, tokens = take_switch(key, binding=browser_hash(session, create=False), user=user)
    connection = switch.connection
    try:
        owner = check_still_authorizes(connection, user, switch)
    except NotPermitted:
        discard(connection, tokens)  # nobody may use them now; do not leave them valid
        raise
    identity = Identity(subject=switch.subject, claims=switch.claims)
    store_grant(
        connection,
        tokens,
        owner=owner,
        actor=user,
        identity=identity,
        base_values=switch.base_values,
    )
    new = old_and_new(switch)[1]
    return SwitchAnswer(connection, switch.return_to, f"{connection.name} now uses {new}.")


def decline_switch(key: str, *, user: RequestUser, session: SessionBase) -> SwitchAnswer:
    """Keep the old grant; revoke the new account's tokens at the provider (best effort)."""
    switch, tokens = take_switch(key, binding=browser_hash(session, create=False), user=user)
    connection = switch.connection
    revoked = discard(connection, tokens)
    old, new = old_and_new(switch)
    outcome = {
        True: "its access was revoked at the provider.",
        False: "revoking its access at the provider failed: revoke it there by hand.",
        None: "the provider has no revocation endpoint: revoke its access there by hand.",
    }[revoked]
    message = f"{connection.name} keeps {old}. The new account {new} was not used; {outcome}"
    token = Token.objects.filter(connection=connection).owned_as(switch).first()
    # An audit row for the attempt that ended without a grant (no signal, no notification).
    record_event(
        EventKind.AUTHORIZATION_FAILED,
        connection,
        token=token,
        actor=user,
        message=message,
        code="switch_declined",
    )
    return SwitchAnswer(connection, switch.return_to, message, complete=revoked is True)

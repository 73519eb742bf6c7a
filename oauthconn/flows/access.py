"""Who may act on a connection, and for which owner: one rule for every edge and flow step.

Starting an authorization and completing it ask the same question (defect 4): a flow that
started while the user was allowed must not finish after the permission, the staff flag or
the account itself is gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oauthconn.exceptions import NotPermitted
from oauthconn.models import Connection

if TYPE_CHECKING:
    from oauthconn.types import Owner, RequestUser

#: the permission that binds an account to a shared connection
AUTHORIZE = "authorize_connection"


def owner_for(connection: Connection, user: RequestUser | None, permission: str) -> Owner:
    """The owner ``user`` may act for on ``connection`` with ``permission``, else NotPermitted.

    A per-user connection's grant belongs to the signed-in user; a shared connection (owner
    None) needs an active staff user holding ``oauthconn.<permission>``. No user at all (DRF
    with ``UNAUTHENTICATED_USER = None``) is refused like an anonymous one.
    """
    if user is None or not (user.is_authenticated and user.is_active):
        raise NotPermitted()
    if connection.per_user:
        return user
    if user.is_staff and user.has_perm(f"oauthconn.{permission}"):
        return None
    raise NotPermitted()


def authorizing_owner(connection: Connection, user: RequestUser) -> Owner:
    """The owner whose grant ``user`` may authorize on ``connection`` (start and callback)."""
    return owner_for(connection, user, AUTHORIZE)


def check_still_authorizes(connection: Connection, user: RequestUser, owner: Owner) -> None:
    """At the callback: ``user`` may still authorize, for the owner chosen at the start."""
    now_owner = authorizing_owner(connection, user)
    if getattr(now_owner, "pk", None) != getattr(owner, "pk", None):
        raise NotPermitted()

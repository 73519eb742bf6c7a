"""Who may act on a connection, and for which owner: one rule for every edge and flow step.

Starting an authorization and completing it ask the same question (defect 4): a flow that
started while the user was allowed must not finish after the permission, the staff flag, the
account itself or the membership of the team it was started for is gone.

Per-owner connections (docs/owners.md): which owners a user may act for is the site's
business, answered by ``OAUTHCONN["OWNER_RESOLVER"]``; it is asked again on every page, start,
callback and answer to an account switch, never remembered (SECURITY R65).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Model
from django.utils.module_loading import import_string

from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import ConfigurationError, NotPermitted
from oauthconn.models import Connection
from oauthconn.models.owners import is_user, owner_key, owner_model

if TYPE_CHECKING:
    from oauthconn.types import Owner, RequestUser

#: the permission that binds an account to a shared connection
AUTHORIZE = "authorize_connection"


def owner_for(
    connection: Connection, user: RequestUser | None, permission: str, requested: str = ""
) -> Owner:
    """The owner ``user`` may act for on ``connection`` with ``permission``, else NotPermitted.

    A per-user connection's grant belongs to the signed-in user; a shared connection (owner
    None) needs an active staff user holding ``oauthconn.<permission>``; a per-owner
    connection's grant belongs to the owner whose primary key is ``requested`` (as text), if
    the resolver lists it for ``user``. No user at all (DRF with ``UNAUTHENTICATED_USER =
    None``) is refused like an anonymous one.
    """
    if user is None or not (user.is_authenticated and user.is_active):
        raise NotPermitted()
    if connection.per_owner:
        found = [owner for owner in owners_of(user) if str(owner.pk) == requested]
        if not found:
            raise NotPermitted("You may not act for this owner on this connection.")
        return found[0]
    if connection.per_user:
        return user
    if user.is_staff and user.has_perm(f"oauthconn.{permission}"):
        return None
    raise NotPermitted()


def owners_of(user: RequestUser | None) -> list[Model]:
    """The ``OWNER_MODEL`` instances ``user`` may act for (none without an owner model).

    Anything else the resolver yields (another model, an unsaved instance) is left out, so a
    careless resolver can never hand a grant to the wrong kind of owner.
    """
    model = owner_model()
    if model is None or user is None or not (user.is_authenticated and user.is_active):
        return []
    return [o for o in _resolver()(user) if isinstance(o, model) and o.pk is not None]


def _resolver() -> Any:
    path = oauthconn_settings.OWNER_RESOLVER
    if not path:
        raise ConfigurationError(
            'OAUTHCONN["OWNER_MODEL"] is set but OAUTHCONN["OWNER_RESOLVER"] is not: name a '
            "callable (user) -> the owners that user may act for."
        )
    try:
        return import_string(path)
    except ImportError as err:
        raise ConfigurationError(
            f'OAUTHCONN["OWNER_RESOLVER"] = {path!r} cannot be imported: {err}'
        ) from err


def authorizing_owner(connection: Connection, user: RequestUser, requested: str = "") -> Owner:
    """The owner whose grant ``user`` may authorize on ``connection`` (start and callback)."""
    return owner_for(connection, user, AUTHORIZE, requested)


def identity(owner: Owner) -> tuple[Any, str]:
    """An owner as the columns of a row name it: (user pk or None, owner_key)."""
    return (owner.pk if is_user(owner) else None, owner_key(owner))  # type: ignore[union-attr]


def check_may_authorize(connection: Connection, user: RequestUser, owner: Owner) -> None:
    """At the start: ``user`` may authorize ``connection`` for ``owner``, else NotPermitted."""
    requested = str(owner.pk) if connection.per_owner and owner is not None else ""
    if identity(authorizing_owner(connection, user, requested)) != identity(owner):
        raise NotPermitted()


def check_still_authorizes(connection: Connection, user: RequestUser, row: Any) -> Owner:
    """At the callback (``row``: the attempt) or a held switch's answer (``row``: the switch):
    ``user`` may still authorize for the owner the row was started for. Returns that owner."""
    requested = row.owner_key.rpartition(":")[2] if connection.per_owner else ""
    owner = authorizing_owner(connection, user, requested)
    if identity(owner) != (row.owner_id, row.owner_key):
        raise NotPermitted()
    return owner

"""Incremental authorization: asking for more scopes without losing the grant (docs/scopes.md).

An upgrade is an ordinary authorization whose request names the grant's scopes plus the new
ones; nothing about the stored grant changes until its callback stores the new one
(:func:`oauthconn.flows.grants.store_grant`), so a refusal or a failure leaves the old
grant working, and a grant of fewer scopes is stored as granted.

What may be added is the connection's choice, not the requester's (R66): only scopes among
its ``scopes`` and ``optional_scopes``. Site code, a link a user followed and an admin's form
all go through :func:`check_requestable`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from django.urls import reverse

from oauthconn.exceptions import ScopeNotAllowed, ScopesRequired
from oauthconn.models import Connection, Token
from oauthconn.oauth.scopes import parse_scopes, union
from oauthconn.presets import PRESETS

if TYPE_CHECKING:
    from oauthconn.types import Owner


def requestable(connection: Connection) -> list[str]:
    """The scopes that may ever be asked for on ``connection``."""
    return union(connection.scope_list, connection.optional_scope_list)


def check_requestable(connection: Connection, values: Iterable[str]) -> list[str]:
    """The scopes in ``values`` (untrusted: a query, a form, site code), if each may be
    requested on ``connection``; else :class:`ScopeNotAllowed` naming the ones refused."""
    scopes = parse_scopes(values)
    allowed = set(requestable(connection))
    refused = [scope for scope in scopes if scope not in allowed]
    if refused:
        raise ScopeNotAllowed(
            f"{connection.name} does not allow requesting {' '.join(refused)}. An admin can "
            "add it to the connection's optional scopes."
        )
    if not scopes:
        raise ScopeNotAllowed("Name at least one scope to request.")
    return scopes


def granted(connection: Connection, owner: Owner) -> list[str]:
    """The scopes of the owner's connected grant; none without one."""
    token = Token.objects.filter(connection=connection).for_owner(owner).first()
    return token.granted_scopes if token is not None and token.is_connected else []


def not_granted(connection: Connection, owner: Owner, scopes: Iterable[str]) -> list[str]:
    """``scopes`` the owner's grant does not hold (all of them without a grant)."""
    held = set(granted(connection, owner))
    return [scope for scope in scopes if scope not in held]


def scopes_to_request(connection: Connection, owner: Owner, extra: Iterable[str] = ()) -> list[str]:
    """What an authorization asks for: the connection's scopes, the grant's that may still be
    requested (so reauthorizing does not drop an earlier upgrade, while a scope the admin
    has since removed from both lists is no longer asked for), then ``extra``."""
    allowed = set(requestable(connection))
    kept = [scope for scope in granted(connection, owner) if scope in allowed]
    return union(connection.scope_list, kept, extra)


def incremental_params(connection: Connection, scopes: Iterable[str]) -> Mapping[str, str]:
    """The preset's incremental parameter (Google's ``include_granted_scopes``) when ``scopes``
    go beyond the connection's own; the admin's extra parameters win over it."""
    preset = PRESETS.get(connection.provider.preset)
    if preset is None or set(scopes) <= set(connection.scope_list):
        return {}
    own = connection.extra_authorize_params
    return {k: v for k, v in preset.incremental_scopes_param.items() if k not in own}


def upgrade_path(
    connection: Connection, scopes: Iterable[str], *, next: str = "", owner: str = ""
) -> str:
    """The path of this site's page that asks the person to add ``scopes`` (a GET shows a
    question; only its POST starts an authorization). It carries no state or secret; for a
    team's grant, the team's primary key (``owner``), checked against membership there."""
    query = {
        "scope": " ".join(scopes),
        **({"next": next} if next else {}),
        **({"owner": owner} if owner else {}),
    }
    return reverse("oauthconn:request_scopes", args=[connection.slug]) + "?" + urlencode(query)


def require_scopes(
    connection: Connection, token: Token, scopes: Iterable[str], *, next: str = ""
) -> None:
    """Return when ``token`` holds every scope in ``scopes``; else :class:`ScopesRequired`
    with the missing ones and :func:`upgrade_path` for them. A scope the connection does not
    allow raises :class:`ScopeNotAllowed` at once: no person could grant it."""
    wanted = parse_scopes(scopes)
    missing = [scope for scope in wanted if not token.has_scope(scope)]
    if not missing:
        return
    check_requestable(connection, missing)
    raise ScopesRequired(
        f"{connection.name} needs more scopes: {' '.join(missing)}. Send the person to "
        "authorize them.",
        missing=missing,
        authorize_url=upgrade_path(
            connection, missing, next=next, owner=token.owner_key.rpartition(":")[2]
        ),
        slug=connection.slug,
    )


def describe_changes(
    asked: Sequence[str], granted: Sequence[str], held: Sequence[str] | None
) -> str:
    """Sentences for an authorization's event and page: the scopes ``asked`` for but not
    ``granted``, and those granted that the grant ``held`` before did not have."""
    text = ""
    missing = [scope for scope in asked if scope not in granted]
    if missing:
        text += f" Scopes not granted: {' '.join(missing)}."
    added = [scope for scope in granted if scope not in held] if held else []
    if added:
        text += f" Scopes added: {' '.join(added)}."
    return text

"""What the edges ask of a connection: connect it, disconnect an owner, delete it.

Views, the admin and the API parse their input, call one of these and render the result, so
"client credentials fetch a token, everything else starts a browser flow" and "revoke
before delete" are each decided here only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.sessions.backends.base import SessionBase

from oauthconn.exceptions import ConfigurationError, NotConnected
from oauthconn.flows.authorization import start_authorization
from oauthconn.flows.registration import end_registrations
from oauthconn.flows.revocation import DisconnectResult, disconnect
from oauthconn.flows.tokens import Renewal, load_token, renew_now
from oauthconn.models import Connection, Token
from oauthconn.models.owners import kind_q

if TYPE_CHECKING:
    from oauthconn.types import Actor, Owner, RequestUser


@dataclass(frozen=True)
class Connected:
    """A client credentials connection got its token at once (``renewal.renewed`` says if a
    new one came, or why the still-valid old one was served)."""

    renewal: Renewal


@dataclass(frozen=True)
class Redirect:
    """Send the browser to ``url``, the provider's authorization page (it carries a state)."""

    url: str


def connect(
    connection: Connection,
    owner: Owner,
    *,
    user: RequestUser,
    session: SessionBase,
    return_to: str = "",
    asked: Mapping[str, str] | None = None,
    extra_scopes: Sequence[str] = (),
) -> Connected | Redirect:
    """Client credentials fetch a token now; every other grant starts a browser flow, for
    ``extra_scopes`` too (:mod:`oauthconn.flows.scopes`).

    ``owner`` is the one :func:`oauthconn.flows.access.owner_for` allowed ``user``. Raises
    any ``OAuthConnError`` of :func:`renew_now` or :func:`start_authorization`. ``asked``:
    the API base URL's ``{ask:...}`` values typed on the connect form (browser grants).
    """
    if not connection.uses_browser:
        if extra_scopes:
            raise ConfigurationError(
                "A client credentials connection requests its scopes with each token: "
                "change the connection's scopes instead."
            )
        return Connected(renew_now(connection, owner))
    url = start_authorization(
        connection,
        user=user,
        session=session,
        owner=owner,
        return_to=return_to,
        extra_scopes=extra_scopes,
        asked=asked,
    )
    return Redirect(url)


def connected_grant(connection: Connection, owner: Owner) -> Token:
    """The owner's grant (``Token.is_connected``), else NotConnected."""
    token = load_token(connection, owner)
    if token is None or not token.is_connected:
        raise NotConnected(f"{connection.name} is not connected.")
    return token


def disconnect_owner(
    connection: Connection, owner: Owner, *, actor: Actor = None
) -> DisconnectResult:
    """Revoke the owner's grant at the provider and forget it; NotConnected if there is none."""
    return disconnect(connected_grant(connection, owner), actor=actor)


def revoke_grants(
    connections: Iterable[Connection], *, actor: Actor = None
) -> list[tuple[Connection, DisconnectResult]]:
    """SECURITY R45: revoke every grant that holds a credential, for each connection; then
    delete the client registrations made automatically (R57, best effort).

    The admin calls this before Django deletes (outside the delete's transaction, see
    ``ConnectionAdmin.delete_view``); :func:`delete_connection` for everyone else.
    """
    connections = list(connections)
    tokens = Token.objects.holding_credentials().filter(connection__in=connections)
    results = [
        (token.connection, disconnect(token, actor=actor))
        for token in tokens.select_related("connection__provider")
    ]
    # R57: then the client registrations oauthconn made (RFC 7592), once no grant needs them.
    end_registrations(connections)
    return results


#: The fields that say whose grants a connection has (shared, per user, per owner).
KIND_FIELDS = frozenset({"per_user", "per_owner"})


def end_stranded_grants(connection: Connection, *, actor: Actor = None) -> list[DisconnectResult]:
    """After a switch between shared, per-user and per-owner, the grants of the old kind can
    never be looked up again, yet the proactive refresh would keep renewing them for nobody.
    Revoke those that hold a credential at the provider (RFC 7009), then delete them all.

    Call it outside a transaction: it sends a request per grant.
    """
    stranded = Token.objects.filter(connection=connection).exclude(kind_q(connection))
    results = [
        disconnect(token, actor=actor)
        for token in stranded.holding_credentials().select_related("connection__provider")
    ]
    stranded.delete()
    return results


def delete_connection(connection: Connection, *, actor: Actor = None) -> list[DisconnectResult]:
    """Revoke every grant of ``connection`` at the provider first (RFC 7009), then delete it."""
    results = [result for _, result in revoke_grants([connection], actor=actor)]
    connection.delete()
    return results

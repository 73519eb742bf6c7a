"""Security-relevant configuration edits invalidate the grant (SECURITY R5).

Pointing a connection at another host (a new token endpoint, issuer, client id...) must not
let that host receive the tokens obtained from the old one, nor the client secret. The admin
form asks for the secret again; this module drops the stored tokens without calling any
revocation endpoint (the new one might be the attacker's) and marks the grants as needing
reauthorization.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.db import transaction

from oauthconn.flows.common import lock_token, record_event
from oauthconn.models import Connection, EventKind, Provider, Token, TokenStatus

if TYPE_CHECKING:
    from oauthconn.types import Actor

#: Connection fields whose change moves secrets or tokens to another place (R5).
SECURITY_RELEVANT_FIELDS: frozenset[str] = frozenset(
    {"provider", "client_id", "client_auth_method", "api_base_url"}
)
#: Provider fields with the same effect for every connection of the provider.
SECURITY_RELEVANT_PROVIDER_FIELDS: frozenset[str] = frozenset(Provider.URL_FIELDS)


def security_relevant(changed_fields: Iterable[str]) -> list[str]:
    """The names in ``changed_fields`` that R5 covers, sorted."""
    relevant = SECURITY_RELEVANT_FIELDS | SECURITY_RELEVANT_PROVIDER_FIELDS
    return sorted(set(changed_fields) & relevant)


def has_stored_grant(connection: Connection) -> bool:
    """True when any owner of the connection holds an access or refresh token."""
    return Token.objects.filter(connection=connection).holding_credentials().exists()


def secret_holders(provider: Provider) -> list[Connection]:
    """R5 for providers: the connections whose client secret, signing key or tokens moving
    ``provider``'s endpoints would send to another server."""
    return [
        c
        for c in provider.connections.all()
        if c.client_secret is not None or c.private_key is not None or has_stored_grant(c)
    ]


def invalidate_grants(
    connection: Connection, changed_fields: Iterable[str], actor: Actor = None
) -> int:
    """Wipe every token of ``connection`` locally and require reauthorization.

    No revocation request is sent: the configured revocation endpoint may be the new, untrusted
    host. Returns the number of grants dropped; each gets a ``needs_reauth`` event naming the
    changed fields (names only, never values).
    """
    fields = sorted(set(changed_fields))
    message = "Configuration changed ({}): authorize again.".format(", ".join(fields))
    dropped = 0
    with transaction.atomic():
        for pk in Token.objects.filter(connection=connection).values_list("pk", flat=True):
            token = lock_token(pk)
            if not token.holds_credentials:
                continue
            _wipe(token, message)
            record_event(
                EventKind.NEEDS_REAUTH,
                connection,
                token=token,
                actor=actor,
                message=message,
                fields=fields,
            )
            dropped += 1
    return dropped


def _wipe(token: Token, message: str) -> None:
    token.clear_credentials()
    token.status = TokenStatus.NEEDS_REAUTH
    token.last_error = message
    token.last_error_code = "configuration_changed"
    token.save()


#: The endpoints that, with the issuer, identify one authorization server (R4).
AS_ENDPOINTS = ("authorization_endpoint", "token_endpoint")


def issuer_conflict(fields: Mapping[str, Any], *, exclude_pk: int | None = None) -> str | None:
    """R4: one issuer identifies one authorization server.

    Another provider with the same issuer must have the same endpoints; otherwise a response
    from one server could be taken for the other's.
    """
    issuer = fields.get("issuer")
    if not issuer:
        return None
    others = Provider.objects.filter(issuer=issuer)
    if exclude_pk is not None:
        others = others.exclude(pk=exclude_pk)
    for other in others:
        if any(getattr(other, name) != fields.get(name, "") for name in AS_ENDPOINTS):
            return (
                f"The provider {other.name!r} already uses the issuer {issuer} with other "
                "endpoints: one issuer must mean one authorization server."
            )
    return None

"""Who authorized: the ID token of an OpenID Connect authorization, checked, plus userinfo.

Called by :func:`oauthconn.flows.authorization.complete_authorization` after the code is
redeemed and before anything is stored, so an ID token that fails a check fails the whole
authorization (SECURITY R31, R32).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import httpx

from oauthconn import http
from oauthconn.crypto import Sealed
from oauthconn.exceptions import (
    IdentityChanged,
    IDTokenAudienceMismatch,
    InvalidIDToken,
    UserinfoFailed,
)
from oauthconn.flows.dpop import binding_of
from oauthconn.models import Connection, Provider, Token
from oauthconn.oauth.idtoken import (
    IDTokenExpectations,
    allowed_algorithms,
    display_claims,
    validate_id_token,
)
from oauthconn.oauth.token_response import TokenSet
from oauthconn.oauth.userinfo import fetch_userinfo

logger = logging.getLogger("oauthconn")


@dataclass(frozen=True)
class Identity:
    """The account behind a grant: ``(issuer, subject)`` identifies it (R34); claims display it."""

    subject: str
    claims: dict[str, str] = field(default_factory=dict)


def describe_account(subject: str, claims: dict) -> str:
    """An account as people know it: its name and e-mail when known, and its subject.

    For pages and event messages; display claims only, never a token.
    """
    email = claims.get("email", "")
    shown = " ".join(
        part for part in (claims.get("name", ""), f"<{email}>" if email else "") if part
    )
    return f"{shown} (subject {subject})" if shown else f"subject {subject}"


def expectations_for(connection: Connection, nonce: str | None) -> IDTokenExpectations:
    provider = connection.provider
    return IDTokenExpectations(
        issuer=provider.issuer,
        client_id=connection.client_id,
        nonce=nonce,
        algorithms=allowed_algorithms(provider.id_token_signing_algs),
        jwks_uri=provider.jwks_uri,
        client_secret=Sealed.reveal_optional(connection.client_secret),
    )


def verify_identity(connection: Connection, tokens: TokenSet, nonce: str | None) -> Identity | None:
    """Validate the ID token of an ``openid`` authorization; None when none was requested.

    Raises an :class:`InvalidIDToken` subclass. Display claims missing from the ID token are
    fetched from userinfo when the provider has an endpoint; userinfo problems are logged
    and leave the claims out (OIDC Core §5.3.2), they do not fail the authorization.
    """
    if nonce is None:
        return None
    if not tokens.id_token:
        raise InvalidIDToken("The provider sent no ID token although 'openid' was requested.")
    if not connection.provider.issuer:
        raise InvalidIDToken("ID tokens cannot be checked: the provider has no issuer set.")
    with http.build_client() as client:
        claims = validate_id_token(client, tokens.id_token, expectations_for(connection, nonce))
        shown = display_claims(claims)
        if _wants_userinfo(connection.provider, shown):
            shown = {**_userinfo_claims(client, connection, tokens, claims["sub"]), **shown}
    return Identity(subject=claims["sub"], claims=shown)


def _wants_userinfo(provider: Provider, shown: dict[str, str]) -> bool:
    return bool(provider.userinfo_endpoint) and not {"name", "email"} <= shown.keys()


def _userinfo_claims(
    client: httpx.Client, connection: Connection, tokens: TokenSet, subject: str
) -> dict[str, str]:
    try:
        claims = fetch_userinfo(
            client,
            connection.provider.userinfo_endpoint,
            access_token=tokens.access_token,
            subject=subject,
            dpop=binding_of(tokens),
        )
    except UserinfoFailed as err:
        logger.warning("oauthconn userinfo not used: connection=%s %s", connection.slug, err)
        return {}
    return display_claims(claims)


def verify_refreshed_id_token(client: httpx.Client, token: Token, tokens: TokenSet) -> None:
    """R39, OIDC Core §12.2: an ID token in a refresh response must pass the same checks
    (without a nonce) and name the account the grant was authorized for.

    Only grants whose first ID token was validated (they have a ``subject``) take new ones;
    others ignore it. Raises an :class:`InvalidIDToken` subclass: :class:`IdentityChanged`
    when the token is for another account or another client, which no retry will cure.
    """
    if not tokens.id_token or not token.subject:
        return
    connection = token.connection
    try:
        claims = validate_id_token(client, tokens.id_token, expectations_for(connection, None))
    except IDTokenAudienceMismatch as err:
        raise IdentityChanged(
            "The provider's refreshed ID token was issued to another client ('aud' or 'azp' "
            "does not match this connection's client id); reauthorize the connection."
        ) from err
    if claims["sub"] != token.subject:
        raise IdentityChanged()

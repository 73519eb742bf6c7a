"""The database side of the kit: a Provider and a Connection pointing at a fake provider,
and a grant obtained through oauthconn's own protocol code and stored by its own flow.

``connect`` runs the authorization code flow against the fake provider as a browser and the
callback would: oauthconn builds the authorization URL (PKCE, nonce), the fake answers with
a redirect, oauthconn parses the callback, checks ``iss`` (RFC 9207), redeems the code,
validates the ID token against the JWKS, and stores the grant with
:func:`oauthconn.flows.grants.store_grant`. Only the session and permission checks of
the callback view are left out: they need a browser session, and they are about who may
connect, not about what the site does with a connection.
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from django.db import transaction
from django.utils import timezone

from oauthconn import http
from oauthconn.crypto import Sealed
from oauthconn.exceptions import AuthorizationDenied, ConfigurationError, InvalidCallback
from oauthconn.flows.common import credentials_for, token_limits
from oauthconn.flows.grants import store_grant
from oauthconn.flows.identity import verify_identity
from oauthconn.models import ClientAuthMethod, Connection, GrantType, Provider, Token
from oauthconn.oauth import pkce
from oauthconn.oauth.authorize import build_authorization_url
from oauthconn.oauth.callback import check_issuer, parse_callback
from oauthconn.oauth.token import exchange_code
from oauthconn.testing.authserver import AuthServer, Client, Grant

if TYPE_CHECKING:
    from oauthconn.types import Actor, Owner


def provider_row(server: AuthServer, slug: str, jwks_path: str) -> Provider:
    """The Provider row of this fake provider (created, or updated to its current port)."""
    base = server.issuer
    row, _ = Provider.objects.update_or_create(
        slug=slug,
        defaults={
            "name": "Fake provider (oauthconn.testing)",
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "revocation_endpoint": f"{base}/revoke",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}{jwks_path}",
            "sends_issuer": True,
            "supported_grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods": ["S256"],
            "token_endpoint_auth_methods": ["client_secret_basic", "client_secret_post", "none"],
        },
    )
    return row


def connection_row(
    server: AuthServer, provider: Provider, slug: str, fields: dict[str, Any]
) -> Connection:
    """The connection ``slug``, created and registered as a client of the fake provider;
    an existing one of this provider is reused (a second owner of a per-user connection)."""
    existing = Connection.objects.filter(slug=slug).first()
    if existing is not None and existing.provider_id != provider.pk:
        raise ConfigurationError(
            f"A connection {slug!r} already exists for another provider; "
            "the fake provider connects only connections it created."
        )
    if existing is not None:
        return existing
    grant_type = fields.pop("grant_type", GrantType.AUTHORIZATION_CODE_PKCE)
    auth_method = fields.pop("client_auth_method", ClientAuthMethod.CLIENT_SECRET_BASIC)
    secret = "" if auth_method == ClientAuthMethod.NONE else secrets.token_urlsafe(24)
    connection = Connection.objects.create(
        slug=slug,
        name=fields.pop("name", slug.replace("-", " ").title()),
        provider=provider,
        grant_type=grant_type,
        client_id=f"{slug}-{secrets.token_hex(4)}",
        client_secret=secret,
        client_auth_method=auth_method,
        api_base_url=f"{server.issuer}/",
        **fields,
    )
    client = Client(connection.client_id, secret or None, connection.redirect_uri, auth_method)
    with server.lock:
        server.clients[client.client_id] = client
    return connection


def authorize(
    server: AuthServer, connection: Connection, *, owner: Owner, subject: str, actor: Actor
) -> Token:
    """Run the authorization code flow against the fake provider and store the grant."""
    state = pkce.make_state()
    verifier = pkce.make_code_verifier() if connection.uses_pkce else None
    nonce = pkce.make_nonce() if "openid" in connection.scope_list else None
    url = build_authorization_url(
        connection.provider.authorization_endpoint,
        client_id=connection.client_id,
        redirect_uri=connection.redirect_uri,
        scope=connection.scope_string,
        state=state,
        code_challenge=pkce.code_challenge_s256(verifier) if verifier else None,
        nonce=nonce,
        # OIDC Core §3.1.2.1: the fake provider signs in whoever the hint names.
        extra_params={**connection.extra_authorize_params, "login_hint": subject},
    )
    with http.build_client() as client:
        location = client.get(url).headers.get("Location", "")
        params = parse_callback(parse_qs(urlsplit(location).query, keep_blank_values=True))
        if params.state != state:
            raise InvalidCallback("The fake provider returned another state.")
        check_issuer(params, connection.provider.issuer, required=True)
        if params.error:
            raise AuthorizationDenied(params.error, params.error_description)
        tokens = exchange_code(
            client,
            connection.provider.token_endpoint,
            code=params.code,
            redirect_uri=connection.redirect_uri,
            code_verifier=verifier,
            credentials=credentials_for(connection),
            extra_params=connection.extra_token_params,
            **token_limits(connection),
        )
    identity = verify_identity(connection, tokens, nonce)
    return store_grant(connection, tokens, owner=owner, actor=actor, identity=identity)


def provider_grant(server: AuthServer, token: Token) -> Grant | None:
    """The fake provider's grant behind a stored token row."""
    for sealed in (token.refresh_token, token.access_token):
        value = Sealed.reveal_optional(sealed)
        grant = server.grant_of(value) if value else None
        if grant is not None:
            return grant
    return None


def expire(server: AuthServer, connection: Connection, owner: Owner) -> Token:
    """Make the stored access token expired, at the provider as well as in the database."""
    with transaction.atomic():
        token = Token.objects.grant_of(connection, owner).select_for_update().get()
        with server.lock:
            grant = provider_grant(server, token)
            if grant is not None:
                server.expire_access_tokens(grant)
            # A client credentials token has no grant: expire the token itself.
            access = server.access_tokens.get(Sealed.reveal_optional(token.access_token) or "")
            if access is not None:
                access.expires_at = min(access.expires_at, time.time() - 1)
        token.expires_at = timezone.now() - timedelta(seconds=1)
        token.save(update_fields=["expires_at", "updated_at"])
    return token


def revoke(server: AuthServer, connection: Connection, owner: Owner) -> None:
    """The provider forgets the grant (the user revoked the app there); the database is left
    as it is, so the site finds out on its next call, as it would in production."""
    token = Token.objects.grant_of(connection, owner).get()
    with server.lock:
        grant = provider_grant(server, token)
        if grant is None:
            raise LookupError(f"The fake provider holds no grant for {connection.slug!r}.")
        grant.revoked = True

"""Disconnect: revoke at the provider (RFC 7009), then forget the tokens locally."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection as db_connection
from django.db import transaction

from oauthconn import http
from oauthconn.exceptions import OAuthConnError
from oauthconn.flows.common import credentials_for, lock_token, record_event
from oauthconn.models import EventKind, Token, TokenStatus
from oauthconn.oauth.revoke import revoke_token


@dataclass(frozen=True)
class DisconnectResult:
    #: True: revoked at the provider; False: revocation failed; None: no revocation endpoint
    revoked_at_provider: bool | None
    message: str


def disconnect(token: Token, *, actor=None) -> DisconnectResult:
    """Revoke the refresh token and the access token, then wipe both, whatever the provider says.

    A provider that cannot be reached marks the token ``revocation_pending`` so an admin knows
    to revoke the grant at the provider by hand.
    """
    if db_connection.features.has_select_for_update:
        # The row lock keeps a refresh from rotating the tokens between revoke and wipe.
        with transaction.atomic():
            token = lock_token(token.pk)
            result = _revoke_at_provider(token)
            _forget(token, result, actor)
        return result
    # SQLite's lock covers the whole database: holding it over the network would stall every
    # writer, the provider too when it shares the database (the demo). Revoke first, then
    # wipe; a refresh racing in between is the narrow price, and SQLite is not for that load.
    result = _revoke_at_provider(
        Token.objects.select_related("connection__provider").get(pk=token.pk)
    )
    with transaction.atomic():
        _forget(lock_token(token.pk), result, actor)
    return result


def _forget(token: Token, result: DisconnectResult, actor) -> None:
    token.clear_credentials()
    token.status = TokenStatus.REVOKED
    token.revocation_pending = result.revoked_at_provider is False
    token.save()
    record_event(
        EventKind.REVOKED, token.connection, token=token, actor=actor, message=result.message
    )


def _revoke_at_provider(token: Token) -> DisconnectResult:
    connection = token.connection
    endpoint = connection.provider.revocation_endpoint
    if not endpoint:
        return DisconnectResult(None, "Disconnected. The provider has no revocation endpoint.")
    # Refresh token first: revoking it usually ends the whole grant (RFC 7009 §2.1).
    pairs = [(token.refresh_token, "refresh_token"), (token.access_token, "access_token")]
    try:
        with http.build_client() as client:
            for value, hint in pairs:
                if value is not None:
                    revoke_token(
                        client,
                        endpoint,
                        token=value.reveal(),
                        token_type_hint=hint,
                        credentials=credentials_for(connection),
                    )
    except OAuthConnError as err:
        return DisconnectResult(
            False,
            f"Disconnected here, but revocation at the provider "
            f"failed: {err}. Revoke the grant at the provider.",
        )
    return DisconnectResult(True, "Disconnected and revoked at the provider.")

"""Disconnect: revoke at the provider (RFC 7009), then forget the tokens locally."""

from __future__ import annotations

from dataclasses import dataclass

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
    with transaction.atomic():
        token = lock_token(token.pk)
        result = _revoke_at_provider(token)
        token.access_token = None
        token.refresh_token = None
        token.id_token = None
        token.expires_at = None
        token.refresh_expires_at = None
        token.status = TokenStatus.REVOKED
        token.revocation_pending = result.revoked_at_provider is False
        token.next_attempt_at = None
        token.save()
        record_event(
            EventKind.REVOKED, token.connection, token=token, actor=actor, message=result.message
        )
    return result


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

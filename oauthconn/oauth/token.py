"""Token requests (RFC 6749 §4.1.3, §4.4, §6): code exchange, refresh, client credentials.

Every request is a single ``POST`` of a form body with ``Accept: application/json``, sent
through :func:`oauthconn.http.send` (size cap, deadline, SSRF guard), never retried (a code
may be redeemed once, RFC 6749 §4.1.2, SECURITY R24) and never redirected (R25). Its answer
is parsed strictly by :mod:`oauthconn.oauth.token_response`: a :class:`TokenSet`, or a typed
:class:`ProviderError`.

DPoP (RFC 9449; SECURITY R50, R52, R53): with a ``dpop`` binding every request carries a
fresh proof, a ``use_dpop_nonce`` answer is retried once with the server's nonce (the server
refused the proof before looking at the code, so R24 holds), and only ``token_type`` DPoP is
accepted; without one, only Bearer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

import httpx

from oauthconn.http import BoundedResponse, send
from oauthconn.oauth.authorize import check_extra_parameters
from oauthconn.oauth.client_auth import ClientCredentials, apply_client_auth
from oauthconn.oauth.dpop import DPoP, nonce_challenge
from oauthconn.oauth.responses import read_payload
from oauthconn.oauth.token_response import (
    DEFAULT_MAX_LIFETIME,
    TOKEN_ENDPOINT,
    TokenSet,
    parse_token_response,
)

# --- requests --------------------------------------------------------------------------------


def exchange_code(
    http: httpx.Client,
    endpoint: str,
    *,
    code: str,
    redirect_uri: str,
    code_verifier: str | None,
    credentials: ClientCredentials,
    extra_params: Mapping[str, str] | None = None,
    now: datetime | None = None,
    default_lifetime: int | None = None,
    max_lifetime: int = DEFAULT_MAX_LIFETIME,
    dpop: DPoP | None = None,
) -> TokenSet:
    """Redeem an authorization code (RFC 6749 §4.1.3, RFC 7636 §4.5). One attempt only.

    ``redirect_uri`` must be the one sent in the authorization request (R12).
    """
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if code_verifier:
        data["code_verifier"] = code_verifier
    return _token_request(
        http, endpoint, data, credentials, extra_params, now, default_lifetime, max_lifetime, dpop
    )


def refresh_token_grant(
    http: httpx.Client,
    endpoint: str,
    *,
    refresh_token: str,
    credentials: ClientCredentials,
    scope: str | None = None,
    extra_params: Mapping[str, str] | None = None,
    now: datetime | None = None,
    default_lifetime: int | None = None,
    max_lifetime: int = DEFAULT_MAX_LIFETIME,
    dpop: DPoP | None = None,
) -> TokenSet:
    """Use a refresh token (RFC 6749 §6; SECURITY R39): no ``redirect_uri``, no verifier.

    ``scope`` only to narrow the grant. A response without ``refresh_token`` gives a
    :class:`TokenSet` whose ``refresh_token`` is None: the caller keeps the old one (R36).
    """
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope:
        data["scope"] = scope
    return _token_request(
        http, endpoint, data, credentials, extra_params, now, default_lifetime, max_lifetime, dpop
    )


def client_credentials_grant(
    http: httpx.Client,
    endpoint: str,
    *,
    credentials: ClientCredentials,
    scope: str,
    extra_params: Mapping[str, str] | None = None,
    now: datetime | None = None,
    default_lifetime: int | None = None,
    max_lifetime: int = DEFAULT_MAX_LIFETIME,
    dpop: DPoP | None = None,
) -> TokenSet:
    """Get a token for the client itself (RFC 6749 §4.4.2; SECURITY R44). ``scope`` may be ""."""
    data = {"grant_type": "client_credentials"}
    if scope:
        data["scope"] = scope
    return _token_request(
        http, endpoint, data, credentials, extra_params, now, default_lifetime, max_lifetime, dpop
    )


def _token_request(
    http: httpx.Client,
    endpoint: str,
    data: dict[str, str],
    credentials: ClientCredentials,
    extra_params: Mapping[str, str] | None,
    now: datetime | None,
    default_lifetime: int | None,
    max_lifetime: int,
    dpop: DPoP | None = None,
) -> TokenSet:
    """POST one token request (RFC 6749 §3.2) and parse the answer."""
    extra = dict(extra_params or {})
    check_extra_parameters(extra)
    # R28: expiry counts from when the request left, which errs on the early side.
    sent_at = now or datetime.now(UTC)
    response = _post(http, endpoint, {**data, **extra}, credentials, dpop)
    if dpop is not None and _wants_nonce(response):
        # RFC 9449 §8: once, with the nonce it sent (a second refusal is DPoPNonceRejected).
        sent_at = now or datetime.now(UTC)
        response = _post(http, endpoint, {**data, **extra}, credentials, dpop)
    tokens = parse_token_response(
        response.status_code,
        response.headers,
        response.content,
        sent_at=sent_at,
        default_lifetime=default_lifetime,
        max_lifetime=max_lifetime,
        dpop=dpop is not None,
    )
    if dpop is None:
        return tokens
    return replace(tokens, dpop_key=dpop.key.to_json())


def _post(
    http: httpx.Client,
    endpoint: str,
    body: dict[str, str],
    credentials: ClientCredentials,
    dpop: DPoP | None,
) -> BoundedResponse:
    # Built anew for each attempt: a client assertion and a DPoP proof are single-use (jti).
    headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
    apply_client_auth(credentials, body, headers, endpoint=endpoint)
    if dpop is not None:
        headers["DPoP"] = dpop.proof("POST", endpoint)
    response = send(http, "POST", endpoint, data=body, headers=headers, follow_redirects=False)
    if dpop is not None:
        dpop.remember(endpoint, response.headers)
    return response


def _wants_nonce(response: BoundedResponse) -> bool:
    if response.status_code != 400:
        return False
    payload = read_payload(400, response.headers, response.content, name=TOKEN_ENDPOINT)
    error = payload.get("error") if payload else None
    return (
        nonce_challenge(400, response.headers, error if isinstance(error, str) else None)
        is not None
    )

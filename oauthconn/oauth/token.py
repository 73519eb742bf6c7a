"""Token requests and strict parsing of token responses (RFC 6749 §4.1.3, §4.4, §5, §6).

Every request is a single ``POST`` of a form body with ``Accept: application/json``, sent
through :func:`oauthconn.http.send` (size cap, deadline, SSRF guard), never retried (a code
may be redeemed once, RFC 6749 §4.1.2, SECURITY R24) and never redirected (R25).

Every response is either a :class:`TokenSet` or a typed :class:`ProviderError`; no
malformed answer ends in a ``KeyError`` or a 500 (SECURITY §2.2, §2.3). Messages carry what
the provider said (``error``, a cleaned ``error_description``) and the HTTP status, never
what we sent and never a token.

Compatibility choices, documented as SECURITY R28 and §2.2 ask:

- ``expires_in`` may be a JSON integer, an integral JSON number (``3600.0``) or a digit-only
  string (``"3600"``, as some providers send); zero, negative, fractional or other values
  are rejected. Values above ``max_lifetime`` are clamped. Missing (or ``null``) means
  ``default_lifetime``; a ``default_lifetime`` of None means "expiry unknown".
- A body is parsed as JSON whatever its Content-Type says (``text/javascript``, a wrong
  charset, even ``text/html``) as long as it *is* a JSON object; an HTML page never is.
  Form-encoded bodies (GitHub's legacy ``access_token=...&token_type=bearer``) are parsed
  as forms.
- ``refresh_token_expires_in`` / ``refresh_expires_in`` are optional hints: invalid or zero
  values (Keycloak sends 0 for offline tokens) mean "unknown", not failure.

DPoP (RFC 9449; SECURITY R50, R52, R53): with a ``dpop`` binding every request carries a
fresh proof, a ``use_dpop_nonce`` answer is retried once with the server's nonce (the server
refused the proof before looking at the code, so R24 holds), and only ``token_type`` DPoP is
accepted; without one, only Bearer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from oauthconn.exceptions import (
    InvalidProviderResponse,
    clean_provider_text,
)
from oauthconn.http import BoundedResponse, send
from oauthconn.oauth.authorize import check_extra_parameters
from oauthconn.oauth.client_auth import ClientCredentials, apply_client_auth
from oauthconn.oauth.dpop import DPoP, nonce_challenge
from oauthconn.oauth.responses import raise_for_failure, read_payload

#: The default of OAUTHCONN['MAX_TOKEN_LIFETIME']; the flows pass the setting itself.
DEFAULT_MAX_LIFETIME = 366 * 24 * 3600
#: RFC 6749 §5.1 sets no size, so tokens are opaque (R27); this generous cap stops abuse.
MAX_TOKEN_LENGTH = 64 * 1024
# Whatever max_lifetime says, never add more than this to a datetime (no OverflowError).
_HARD_MAX_LIFETIME = 100 * 366 * 24 * 3600

_TOKEN_ENDPOINT = "token endpoint"


@dataclass(frozen=True)
class TokenSet:
    """A successful token response (RFC 6749 §5.1), with absolute, aware-UTC expiry times."""

    access_token: str
    token_type: str
    expires_at: datetime | None
    refresh_token: str | None
    refresh_expires_at: datetime | None
    scope: str | None
    id_token: str | None
    #: seconds from ``expires_in`` (clamped) or the default lifetime; None when unknown
    lifetime: int | None = field(default=None, compare=False)
    #: DPoP (RFC 9449): the key the tokens are bound to, as ``DPoPKey.to_json`` (a secret)
    dpop_key: str | None = field(default=None, compare=False, repr=False)

    def __repr__(self) -> str:
        return (
            f"TokenSet(token_type={self.token_type!r}, expires_at={self.expires_at!r}, "
            f"refresh_token={'<set>' if self.refresh_token else None}, "
            f"refresh_expires_at={self.refresh_expires_at!r}, scope={self.scope!r}, "
            f"id_token={'<set>' if self.id_token else None}, "
            f"dpop_key={'<set>' if self.dpop_key else None})"
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
    payload = read_payload(400, response.headers, response.content, name=_TOKEN_ENDPOINT)
    error = payload.get("error") if payload else None
    return (
        nonce_challenge(400, response.headers, error if isinstance(error, str) else None)
        is not None
    )


# --- responses -------------------------------------------------------------------------------


def parse_token_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    sent_at: datetime,
    default_lifetime: int | None,
    max_lifetime: int,
    dpop: bool = False,
) -> TokenSet:
    """Turn a token endpoint response into a :class:`TokenSet` or raise (RFC 6749 §5.1, §5.2).

    Accepted only: HTTP 200, a JSON object (or legacy form body) without ``error``, a
    non-empty ``access_token`` and ``token_type`` Bearer (case-insensitive, §7.1; SECURITY
    R26), or DPoP when the request carried a proof (``dpop``; RFC 9449 §5, R50). ``sent_at``
    is when the request was sent and must be timezone-aware.
    """
    if sent_at.tzinfo is None:
        raise ValueError("sent_at must be a timezone-aware datetime")
    headers = httpx.Headers(headers)
    payload = read_payload(status, headers, body, name=_TOKEN_ENDPOINT)
    raise_for_failure(status, headers, payload, name=_TOKEN_ENDPOINT, now=sent_at)
    assert payload is not None  # read_payload raises for a 200 it cannot parse
    return _token_set(payload, sent_at.astimezone(UTC), default_lifetime, max_lifetime, dpop)


# --- the success body ------------------------------------------------------------------------


def _token_set(
    payload: Mapping[str, Any],
    sent_at: datetime,
    default_lifetime: int | None,
    max_lifetime: int,
    dpop: bool,
) -> TokenSet:
    # Read first: a provider that rotates has already spent the old refresh token, so a new
    # one must survive the rest of the response being refused (the flow stores it).
    refresh_token = _refresh_token(payload)
    try:
        return _checked_token_set(
            payload, refresh_token, sent_at, default_lifetime, max_lifetime, dpop
        )
    except InvalidProviderResponse as err:
        if refresh_token:
            err.salvage(refresh_token)
        raise


def _checked_token_set(
    payload: Mapping[str, Any],
    refresh_token: str | None,
    sent_at: datetime,
    default_lifetime: int | None,
    max_lifetime: int,
    dpop: bool,
) -> TokenSet:
    expires_in = payload.get("expires_in")
    if expires_in is None:
        lifetime = default_lifetime if default_lifetime and default_lifetime > 0 else None
    else:
        lifetime = _seconds(expires_in)
        if lifetime is None or lifetime <= 0:
            raise InvalidProviderResponse(
                "The token response has an invalid expires_in", status=200
            )
    refresh_lifetime = _seconds(
        payload.get("refresh_token_expires_in", payload.get("refresh_expires_in"))
    )
    return TokenSet(
        access_token=_access_token(payload),
        token_type=_token_type(payload, dpop),
        expires_at=_expiry(sent_at, lifetime, max_lifetime),
        lifetime=_clamped(lifetime, max_lifetime),
        refresh_token=refresh_token,
        refresh_expires_at=_expiry(sent_at, refresh_lifetime, max_lifetime),
        scope=_optional_string(payload, "scope"),
        id_token=_optional_token(payload, "id_token"),
    )


def _access_token(payload: Mapping[str, Any]) -> str:
    token = payload.get("access_token")
    if token is None:
        raise InvalidProviderResponse("The token response has no access_token", status=200)
    if not isinstance(token, str) or not token:
        raise InvalidProviderResponse(
            "The token response's access_token is empty or not text", status=200
        )
    return _capped(token, "access_token")


def _token_type(payload: Mapping[str, Any], dpop: bool) -> str:
    token_type = payload.get("token_type")
    if token_type is None or token_type == "":
        raise InvalidProviderResponse("The token response is missing token_type", status=200)
    kind = token_type.lower() if isinstance(token_type, str) else None
    if kind == "bearer" and not dpop:
        return "Bearer"
    if kind == "dpop" and dpop:
        return "DPoP"  # RFC 9449 §5: bound to the key of the proof we sent
    if kind == "bearer":
        # R53: the connection asked for a sender-constrained token; a bearer one would
        # quietly drop the protection the admin chose.
        raise InvalidProviderResponse(
            "The provider issued a Bearer token although the request carried a DPoP proof; "
            "this connection requires DPoP-bound tokens",
            status=200,
        )
    if kind == "dpop":
        raise InvalidProviderResponse(
            "Unsupported token type 'DPoP' for a request without a DPoP proof: turn DPoP on "
            "for this connection",
            status=200,
        )
    # RFC 6749 §7.1: never use a token whose type we do not understand (mac, N_A).
    shown = clean_provider_text(token_type, 32)
    raise InvalidProviderResponse(f"Unsupported token type {shown!r}", status=200)


def _refresh_token(payload: Mapping[str, Any]) -> str | None:
    token = payload.get("refresh_token")
    if token is None or token == "":
        return None  # no new refresh token: the caller keeps the old one (R36)
    if not isinstance(token, str):
        raise InvalidProviderResponse("The token response's refresh_token is not text", status=200)
    return _capped(token, "refresh_token")


def _optional_string(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) else None


def _optional_token(payload: Mapping[str, Any], key: str) -> str | None:
    value = _optional_string(payload, key)
    return _capped(value, key) if value else None


def _capped(token: str, name: str) -> str:
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidProviderResponse(f"The token response's {name} is too long", status=200)
    return token


def _seconds(value: object) -> int | None:
    """A lifetime in whole seconds, or None when ``value`` is not one (see module docstring)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None  # False for inf and nan too
    if isinstance(value, str) and value.isascii() and value.isdigit():
        # Long digit strings would hit int()'s digit limit; they are clamped anyway.
        return int(value) if len(value) <= 18 else _HARD_MAX_LIFETIME
    return None


def _clamped(lifetime: int | None, max_lifetime: int) -> int | None:
    if lifetime is None or lifetime <= 0:
        return None
    return min(lifetime, max_lifetime, _HARD_MAX_LIFETIME)


def _expiry(sent_at: datetime, lifetime: int | None, max_lifetime: int) -> datetime | None:
    seconds = _clamped(lifetime, max_lifetime)
    return None if seconds is None else sent_at + timedelta(seconds=seconds)

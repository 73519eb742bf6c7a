"""Token requests and strict parsing of token responses (RFC 6749 §4.1.3, §4.4, §5, §6).

Every request is a single ``POST`` of a form body with ``Accept: application/json``, sent
through :func:`oauthconn.http.send` (size cap, deadline, SSRF guard), never retried (a code
may be redeemed once, RFC 6749 §4.1.2, SECURITY R24) and never redirected (R25).

Every response is either a :class:`TokenSet` or a typed :class:`ProviderError`; no
malformed answer ends in a ``KeyError`` or a 500 (SECURITY §2.2, §2.3). Messages carry what
the provider said (``error``, a cleaned ``error_description``) and the HTTP status, never
what we sent and never a token.

Compatibility choices, documented as SECURITY R28/§2.2 ask:

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
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx

from oauthconn.exceptions import (
    InvalidClient,
    InvalidGrant,
    InvalidProviderResponse,
    ProviderError,
    ProviderUnavailable,
    UnauthorizedClient,
    clean_provider_text,
)
from oauthconn.http import parse_retry_after, send
from oauthconn.oauth.authorize import check_extra_parameters
from oauthconn.oauth.client_auth import ClientCredentials, apply_client_auth

#: The default of OAUTHCONN['MAX_TOKEN_LIFETIME']; the flows pass the setting itself.
DEFAULT_MAX_LIFETIME = 366 * 24 * 3600
#: RFC 6749 §5.1 sets no size, so tokens are opaque (R27); this generous cap stops abuse.
MAX_TOKEN_LENGTH = 64 * 1024
# Whatever max_lifetime says, never add more than this to a datetime (no OverflowError).
_HARD_MAX_LIFETIME = 100 * 366 * 24 * 3600

_TOKEN_ENDPOINT = "token endpoint"
_FORM_BODY = re.compile(rb"[\w.\-]+=[^&\s]*(?:&[\w.\-]+=[^&\s]*)*")
_CHARSET = re.compile(r"charset=[\"']?([\w.:\-]+)", re.IGNORECASE)
_PKCE_WORDS = ("pkce", "code_verifier", "code verifier", "code_challenge", "code challenge")


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

    def __repr__(self) -> str:
        return (
            f"TokenSet(token_type={self.token_type!r}, expires_at={self.expires_at!r}, "
            f"refresh_token={'<set>' if self.refresh_token else None}, "
            f"refresh_expires_at={self.refresh_expires_at!r}, scope={self.scope!r}, "
            f"id_token={'<set>' if self.id_token else None})"
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
) -> TokenSet:
    """Redeem an authorization code (RFC 6749 §4.1.3, RFC 7636 §4.5). One attempt only.

    ``redirect_uri`` must be the one sent in the authorization request (R12).
    """
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if code_verifier:
        data["code_verifier"] = code_verifier
    return _token_request(
        http, endpoint, data, credentials, extra_params, now, default_lifetime, max_lifetime
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
) -> TokenSet:
    """Use a refresh token (RFC 6749 §6; SECURITY R39): no ``redirect_uri``, no verifier.

    ``scope`` only to narrow the grant. A response without ``refresh_token`` gives a
    :class:`TokenSet` whose ``refresh_token`` is None: the caller keeps the old one (R36).
    """
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if scope:
        data["scope"] = scope
    return _token_request(
        http, endpoint, data, credentials, extra_params, now, default_lifetime, max_lifetime
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
) -> TokenSet:
    """Get a token for the client itself (RFC 6749 §4.4.2; SECURITY R44). ``scope`` may be ""."""
    data = {"grant_type": "client_credentials"}
    if scope:
        data["scope"] = scope
    return _token_request(
        http, endpoint, data, credentials, extra_params, now, default_lifetime, max_lifetime
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
) -> TokenSet:
    """POST one token request (RFC 6749 §3.2) and parse the answer."""
    extra = dict(extra_params or {})
    check_extra_parameters(extra)
    body = {**data, **extra}
    headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
    apply_client_auth(credentials, body, headers, endpoint=endpoint)
    # R28: expiry counts from when the request left, which errs on the early side.
    sent_at = now or datetime.now(UTC)
    response = send(http, "POST", endpoint, data=body, headers=headers, follow_redirects=False)
    return parse_token_response(
        response.status_code,
        response.headers,
        response.content,
        sent_at=sent_at,
        default_lifetime=default_lifetime,
        max_lifetime=max_lifetime,
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
) -> TokenSet:
    """Turn a token endpoint response into a :class:`TokenSet` or raise (RFC 6749 §5.1, §5.2).

    Accepted only: HTTP 200, a JSON object (or legacy form body) without ``error``, a
    non-empty ``access_token`` and ``token_type`` Bearer (case-insensitive, §7.1; SECURITY
    R26). ``sent_at`` is when the request was sent and must be timezone-aware.
    """
    if sent_at.tzinfo is None:
        raise ValueError("sent_at must be a timezone-aware datetime")
    headers = httpx.Headers(headers)
    payload = read_payload(status, headers, body, name=_TOKEN_ENDPOINT)
    raise_for_failure(status, headers, payload, name=_TOKEN_ENDPOINT, now=sent_at)
    assert payload is not None  # read_payload raises for a 200 it cannot parse
    return _token_set(payload, sent_at.astimezone(UTC), default_lifetime, max_lifetime)


def read_payload(
    status: int, headers: httpx.Headers, body: bytes, *, name: str
) -> dict[str, Any] | None:
    """The body as a dict. For a 200, an unusable body raises; otherwise it gives None."""
    try:
        return _parse_body(status, headers, body, name)
    except InvalidProviderResponse:
        if status == 200:
            raise
        return None


def _parse_body(status: int, headers: httpx.Headers, body: bytes, name: str) -> dict[str, Any]:
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    stripped = body.strip()
    if not stripped:
        raise InvalidProviderResponse(f"Empty response from the {name}", status=status)
    looks_like_json = stripped.startswith((b"{", b"["))
    if stripped.startswith(b"<") or (content_type == "text/html" and not looks_like_json):
        raise InvalidProviderResponse(f"Unexpected HTML response from the {name}", status=status)
    if content_type == "application/x-www-form-urlencoded" or (
        not looks_like_json and _FORM_BODY.fullmatch(stripped)
    ):
        return _parse_form(stripped, status, name)
    value = _parse_json(body, headers, status, name)
    if not isinstance(value, dict):
        raise InvalidProviderResponse(f"The {name}'s JSON is not an object", status=status)
    return value


def _parse_json(body: bytes, headers: httpx.Headers, status: int, name: str) -> Any:
    invalid = InvalidProviderResponse(f"Invalid JSON from the {name}", status=status)
    try:
        # bytes in: json detects UTF-8/16/32 and a BOM itself (RFC 8259 §8.1).
        return json.loads(body, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        pass
    except (ValueError, RecursionError) as err:  # RecursionError: "[[[[..." nested deep
        raise invalid from err
    # Not UTF-8: try the charset the Content-Type declares (T28: ISO-8859-1 happens).
    match = _CHARSET.search(headers.get("content-type", ""))
    try:
        return json.loads(body.decode(match.group(1) if match else "utf-8"))
    except (LookupError, ValueError, RecursionError) as err:
        raise invalid from err


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _parse_form(body: bytes, status: int, name: str) -> dict[str, Any]:
    """A form-encoded token response (pre-RFC GitHub style)."""
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError) as err:
        raise InvalidProviderResponse(
            f"Unreadable response from the {name}", status=status
        ) from err
    if any(len(values) > 1 for values in parsed.values()):
        raise InvalidProviderResponse(f"The {name} repeated a parameter", status=status)
    return {key: values[0] for key, values in parsed.items()}


def raise_for_failure(
    status: int,
    headers: httpx.Headers,
    payload: dict[str, Any] | None,
    *,
    name: str,
    now: datetime,
) -> None:
    """Raise the typed error for anything but a 200 without ``error`` (RFC 6749 §5.2).

    Order matters: a redirect is never a success (R25); 5xx/429 are transient whatever the
    body says (R38); then the ``error`` member, even on a 200 (T17); then the status.
    """
    if 300 <= status < 400:
        raise InvalidProviderResponse(
            f"The {name} redirected; redirects are not followed", status=status
        )
    if status >= 500 or status == 429:
        raise _unavailable(status, headers, payload, name, now)
    if payload is not None and payload.get("error") not in (None, ""):
        raise error_from_payload(payload, status, name=name)
    if status == 401 and payload is None and "www-authenticate" in headers:
        raise InvalidClient(status=status)
    if status != 200:
        kind = "an error response that is not JSON" if payload is None else "an unexpected status"
        cls = InvalidProviderResponse if 200 <= status < 300 else ProviderError
        raise cls(f"The {name} returned {kind}", status=status)


def _unavailable(
    status: int,
    headers: httpx.Headers,
    payload: dict[str, Any] | None,
    name: str,
    now: datetime,
) -> ProviderUnavailable:
    retry_after = parse_retry_after(headers.get("retry-after"), now=now)
    if status == 429:
        message = f"The {name} is rate limiting requests"
    else:
        message = f"The {name} is temporarily unavailable"
    if retry_after is not None:
        message += f"; try again in {int(retry_after)} s"
    payload = payload or {}
    return ProviderUnavailable(
        message,
        status=status,
        error=_error_code(payload) if payload.get("error") else "",
        description=payload.get("error_description", ""),
        retry_after=retry_after,
    )


#: RFC 6749 §5.2 codes -> (exception class, sentence or None for the class's own message).
_ERRORS: dict[str, tuple[type[ProviderError], str | None]] = {
    "invalid_grant": (InvalidGrant, None),
    "invalid_client": (InvalidClient, None),
    "unauthorized_client": (UnauthorizedClient, None),
    "temporarily_unavailable": (ProviderUnavailable, None),
    "server_error": (ProviderUnavailable, None),
    "slow_down": (ProviderUnavailable, None),
    "unsupported_grant_type": (
        ProviderError,
        "The provider does not support this grant type for this client; check the "
        "connection's grant type",
    ),
    "invalid_scope": (
        ProviderError,
        "The provider rejected the requested scopes; check the connection's scopes",
    ),
    "invalid_request": (
        ProviderError,
        "The provider rejected the request as malformed; check the connection's configuration",
    ),
}


def _error_code(payload: Mapping[str, Any]) -> str:
    # A non-string error (some APIs nest an object) still is an error, just an unnamed one.
    return clean_provider_text(payload.get("error"), 64) or "unknown_error"


def error_from_payload(payload: Mapping[str, Any], status: int, *, name: str) -> ProviderError:
    """The exception for an error response's ``error`` member (RFC 6749 §5.2; R29, T20)."""
    error = _error_code(payload)
    description = clean_provider_text(payload.get("error_description"))
    cls, message = _ERRORS.get(error, (ProviderError, f"The {name} returned an error"))
    if error == "invalid_request" and any(w in description.lower() for w in _PKCE_WORDS):
        message = f"{message}; the provider may not support PKCE (S256)"
    return cls(message, status=status, error=error, description=description)


# --- the success body ------------------------------------------------------------------------


def _token_set(
    payload: Mapping[str, Any], sent_at: datetime, default_lifetime: int | None, max_lifetime: int
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
        token_type=_token_type(payload),
        expires_at=_expiry(sent_at, lifetime, max_lifetime),
        refresh_token=_refresh_token(payload),
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


def _token_type(payload: Mapping[str, Any]) -> str:
    token_type = payload.get("token_type")
    if token_type is None or token_type == "":
        raise InvalidProviderResponse("The token response is missing token_type", status=200)
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        # RFC 6749 §7.1: never use a token whose type we do not understand (mac, N_A, DPoP).
        shown = clean_provider_text(token_type, 32)
        raise InvalidProviderResponse(f"Unsupported token type {shown!r}", status=200)
    return "Bearer"


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


def _expiry(sent_at: datetime, lifetime: int | None, max_lifetime: int) -> datetime | None:
    if lifetime is None or lifetime <= 0:
        return None
    seconds = min(lifetime, max_lifetime, _HARD_MAX_LIFETIME)
    return sent_at + timedelta(seconds=seconds)

"""Strict parsing of token responses (RFC 6749 §5.1, §5.2; SECURITY §2.2, §2.3, R26–R29).

Every response is either a :class:`TokenSet` or a typed :class:`ProviderError`; no
malformed answer ends in a ``KeyError`` or a 500. Messages carry what the provider said
(``error``, a cleaned ``error_description``) and the HTTP status, never what we sent and
never a token. The requests are :mod:`oauthconn.oauth.token`'s.

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
- Only ``token_type`` Bearer is accepted, or DPoP when the request carried a proof
  (RFC 9449 §5; R50, R53).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from oauthconn.exceptions import InvalidProviderResponse, clean_provider_text
from oauthconn.oauth.responses import raise_for_failure, read_payload

#: The default of OAUTHCONN['MAX_TOKEN_LIFETIME']; the flows pass the setting itself.
DEFAULT_MAX_LIFETIME = 366 * 24 * 3600
#: RFC 6749 §5.1 sets no size, so tokens are opaque (R27); this generous cap stops abuse.
MAX_TOKEN_LENGTH = 64 * 1024
# Whatever max_lifetime says, never add more than this to a datetime (no OverflowError).
_HARD_MAX_LIFETIME = 100 * 366 * 24 * 3600

#: how errors name the endpoint
TOKEN_ENDPOINT = "token endpoint"


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
    #: the response's other members with short text values (Salesforce's ``instance_url``),
    #: for the API base URL's ``{token:...}`` fields; may hold anything, so never shown
    extra: Mapping[str, str] = field(default_factory=dict, compare=False)
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
    payload = read_payload(status, headers, body, name=TOKEN_ENDPOINT)
    raise_for_failure(status, headers, payload, name=TOKEN_ENDPOINT, now=sent_at)
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
        extra=_extra_members(payload),
    )


#: RFC 6749 §5.1 and OpenID Connect members, read above; everything else is "extra"
_STANDARD_MEMBERS = frozenset(
    {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_token_expires_in",
        "refresh_expires_in",
        "scope",
        "id_token",
    }
)
#: extra members kept: a few short texts are all a base URL field needs
MAX_EXTRA_MEMBERS, MAX_EXTRA_LENGTH = 32, 2000


def _extra_members(payload: Mapping[str, Any]) -> dict[str, str]:
    extra = {
        key: value
        for key, value in payload.items()
        if key not in _STANDARD_MEMBERS
        and isinstance(value, str)
        and len(value) <= MAX_EXTRA_LENGTH
    }
    return dict(list(extra.items())[:MAX_EXTRA_MEMBERS])


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

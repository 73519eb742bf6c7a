"""Reading error and success bodies of token-style endpoints (RFC 6749 §5.1, §5.2; RFC 7009 §2.2).

Shared by the token and revocation requests: a body becomes a dict or a typed
:class:`ProviderError`, never a ``KeyError`` or a 500. Messages carry what the provider said
(``error``, a cleaned ``error_description``) and the HTTP status, never what was sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import httpx

from oauthconn.exceptions import (
    DPoPNonceRejected,
    DPoPProofRejected,
    InvalidClient,
    InvalidGrant,
    InvalidProviderResponse,
    ProviderError,
    ProviderUnavailable,
    UnauthorizedClient,
    clean_provider_text,
)
from oauthconn.http import parse_retry_after

_FORM_BODY = re.compile(rb"[\w.\-]+=[^&\s]*(?:&[\w.\-]+=[^&\s]*)*")
_CHARSET = re.compile(r"charset=[\"']?([\w.:\-]+)", re.IGNORECASE)
_PKCE_WORDS = ("pkce", "code_verifier", "code verifier", "code_challenge", "code challenge")


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
    # RFC 9449 §8: only left over when the retry with the server's nonce was refused too.
    "use_dpop_nonce": (DPoPNonceRejected, None),
    "invalid_dpop_proof": (DPoPProofRejected, None),
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

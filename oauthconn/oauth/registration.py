"""Dynamic client registration (RFC 7591) and its management (RFC 7592; SECURITY R57).

:func:`register_client` POSTs the client's metadata as JSON to the provider's
``registration_endpoint`` (with an initial access token when the provider hands them out,
§3) and returns a :class:`Registration`: the ``client_id``, and when issued the
``client_secret``, the ``registration_access_token`` and the ``registration_client_uri``
(RFC 7592 §3). :func:`delete_registration` ends the registration (RFC 7592 §2.3).

Every request goes through :func:`oauthconn.http.send` (SSRF guard, size cap, deadline), never
redirected or retried. A refusal (§3.2.2 ``invalid_client_metadata``, ``invalid_redirect_uri``,
a 401/403 for a missing initial access token) is :class:`RegistrationRefused`; 5xx and 429 are
``ProviderUnavailable``. Secrets never appear in ``repr`` or messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from oauthconn.exceptions import (
    InsecureURL,
    ProviderError,
    RegistrationRefused,
    clean_provider_text,
)
from oauthconn.http import check_url, send
from oauthconn.oauth.responses import raise_for_failure, read_payload

_NAME = "registration endpoint"
_MANAGEMENT = "registration management endpoint"
#: Methods oauthconn can use, in the order it prefers to register them (a secret beats none:
#: the code is then redeemed by an authenticated client; PKCE is used either way).
PREFERRED_METHODS = ("client_secret_basic", "client_secret_post", "none")


@dataclass(frozen=True)
class Registration:
    """What the provider registered (RFC 7591 §3.2.1, RFC 7592 §3)."""

    client_id: str
    token_endpoint_auth_method: str
    client_secret: str | None = field(default=None, repr=False)
    registration_access_token: str | None = field(default=None, repr=False)
    registration_client_uri: str = ""


def choose_auth_method(supported: list[str] | tuple[str, ...]) -> str:
    """The method to ask for: the first of :data:`PREFERRED_METHODS` the provider lists
    (RFC 8414 §2: an empty list means ``client_secret_basic``)."""
    offered = list(supported) or ["client_secret_basic"]
    return next((m for m in PREFERRED_METHODS if m in offered), "client_secret_basic")


def registration_request(
    *, redirect_uri: str, client_name: str, auth_method: str, scope: str = ""
) -> dict[str, Any]:
    """The client metadata oauthconn registers (RFC 7591 §2): a web client with one redirect
    URI, the code and refresh grants, and the token endpoint auth method chosen."""
    metadata: dict[str, Any] = {
        "redirect_uris": [redirect_uri],
        "client_name": client_name,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": auth_method,
        "application_type": "web",
    }
    if scope:
        metadata["scope"] = scope
    return metadata


def register_client(
    http: httpx.Client,
    endpoint: str,
    metadata: Mapping[str, Any],
    *,
    initial_access_token: str | None = None,
) -> Registration:
    """Register a client (RFC 7591 §3.1) and return what the provider issued."""
    headers = {"Accept": "application/json"}
    if initial_access_token:
        headers["Authorization"] = f"Bearer {initial_access_token}"
    response = send(
        http, "POST", endpoint, json=dict(metadata), headers=headers, follow_redirects=False
    )
    return parse_registration_response(
        response.status_code, response.headers, response.content, requested=metadata
    )


def parse_registration_response(
    status: int, headers: Mapping[str, str], body: bytes, *, requested: Mapping[str, Any]
) -> Registration:
    """A registration endpoint's answer (RFC 7591 §3.2.1, §3.2.2), or the typed error."""
    payload = _payload(status, headers, body, _NAME)
    client_id = payload.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise RegistrationRefused("The registration response has no client_id", status=status)
    method = payload.get("token_endpoint_auth_method", requested.get("token_endpoint_auth_method"))
    secret = _optional(payload, "client_secret", status)
    if method != "none" and not secret:
        raise RegistrationRefused(
            f"The provider registered a {clean_provider_text(method, 40)} client without a "
            "client secret",
            status=status,
        )
    uri = _optional(payload, "registration_client_uri", status) or ""
    if uri:
        try:
            check_url(uri, field="The registration_client_uri")
        except InsecureURL as err:
            raise RegistrationRefused(str(err), status=status) from err
    return Registration(
        client_id=client_id,
        token_endpoint_auth_method=str(method or "client_secret_basic"),
        client_secret=secret,
        registration_access_token=_optional(payload, "registration_access_token", status),
        registration_client_uri=uri,
    )


def delete_registration(http: httpx.Client, client_uri: str, access_token: str) -> None:
    """End the registration (RFC 7592 §2.3): 204 (or a 404: already gone) is success."""
    response = send(
        http,
        "DELETE",
        client_uri,
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        follow_redirects=False,
    )
    if response.status_code in (200, 204, 404):
        return
    _payload(response.status_code, response.headers, response.content, _MANAGEMENT)
    raise ProviderError(
        f"The {_MANAGEMENT} did not delete the registration", status=response.status_code
    )


def _payload(status: int, headers: Mapping[str, str], body: bytes, name: str) -> dict[str, Any]:
    """The JSON object of a 200/201, else the typed error (5xx/429: ProviderUnavailable)."""
    headers = httpx.Headers(headers)
    ok = status in (200, 201)
    payload = read_payload(200 if ok else status, headers, body, name=name)
    if status >= 500 or status == 429 or 300 <= status < 400:
        raise_for_failure(status, headers, payload, name=name, now=datetime.now(UTC))
    payload = payload or {}
    if not ok or payload.get("error"):
        raise RegistrationRefused(
            f"The {name} refused the request",
            status=status,
            error=str(payload.get("error") or ""),
            description=str(payload.get("error_description") or ""),
        )
    return payload


def _optional(payload: Mapping[str, Any], name: str, status: int) -> str | None:
    value = payload.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 64 * 1024:
        raise RegistrationRefused(
            f"The registration response's {name} is not usable", status=status
        )
    return value

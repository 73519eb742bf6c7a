"""Pushed authorization requests (RFC 9126; SECURITY R55).

Instead of carrying the authorization request in the browser's URL, the client POSTs every
parameter to the provider's ``pushed_authorization_request_endpoint``, authenticating as it
does at the token endpoint (§2.1), and gets back a one-time ``request_uri`` (§2.2). The
browser is then sent to the authorization endpoint with only ``client_id`` and
``request_uri`` (§4): nothing of the request (scopes, state, PKCE challenge, resource) can be
read or changed on the way.

The push is one ``POST`` through :func:`oauthconn.http.send` (SSRF guard, size cap, deadline),
never redirected, never retried. Its answer is a :class:`PushedRequest` or the same typed
:class:`~oauthconn.exceptions.ProviderError` a token endpoint's would give (401 →
``InvalidClient``, 400 ``invalid_request`` → ``ProviderError``, 5xx → ``ProviderUnavailable``,
a 201 without ``request_uri`` or ``expires_in`` → ``InvalidProviderResponse``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from oauthconn.exceptions import ConfigurationError, InvalidProviderResponse, clean_provider_text
from oauthconn.http import send
from oauthconn.oauth.authorize import append_query, check_endpoint
from oauthconn.oauth.client_auth import ClientCredentials, apply_client_auth
from oauthconn.oauth.responses import raise_for_failure, read_payload

_NAME = "pushed authorization request endpoint"
#: RFC 9126 §2.2 says request_uri is short-lived (its example: 60 s). A longer one is used as
#: the provider says; this cap only keeps a hostile value from overflowing a datetime.
_MAX_EXPIRES_IN = 24 * 3600
#: request_uri values are "urn:ietf:params:oauth:request_uri:<ref>" in practice; the RFC sets
#: no size, so this generous cap only stops abuse of the redirect URL we build from it.
MAX_REQUEST_URI_LENGTH = 2048


@dataclass(frozen=True)
class PushedRequest:
    """A successful push (RFC 9126 §2.2): the reference to send, and until when it is valid."""

    request_uri: str
    expires_at: datetime


def push_authorization_request(
    http: httpx.Client,
    endpoint: str,
    params: Mapping[str, str],
    *,
    credentials: ClientCredentials,
    now: datetime | None = None,
) -> PushedRequest:
    """POST the authorization request's ``params`` to ``endpoint`` (RFC 9126 §2.1).

    ``params`` are :func:`oauthconn.oauth.authorize.authorization_parameters`; the client
    authenticates with ``credentials`` as at the token endpoint (RFC 6749 §2.3). ``request_uri``
    may not be among them (§2.1: the request is pushed *instead of* a request object reference).
    """
    if "request_uri" in params:
        raise ConfigurationError("A pushed authorization request must not carry request_uri.")
    body = dict(params)
    headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
    apply_client_auth(credentials, body, headers, endpoint=endpoint)
    sent_at = now or datetime.now(UTC)
    response = send(http, "POST", endpoint, data=body, headers=headers, follow_redirects=False)
    return parse_push_response(
        response.status_code, response.headers, response.content, sent_at=sent_at
    )


def parse_push_response(
    status: int, headers: Mapping[str, str], body: bytes, *, sent_at: datetime
) -> PushedRequest:
    """A push endpoint's answer as a :class:`PushedRequest`, or the typed error (§2.2, §2.3).

    Success is HTTP 201 with a JSON object holding a string ``request_uri`` and a positive
    integer ``expires_in``. Some servers answer 200; that is accepted too, since the body is
    what carries the meaning and a client cannot do anything else with it.
    """
    if sent_at.tzinfo is None:
        raise ValueError("sent_at must be a timezone-aware datetime")
    headers = httpx.Headers(headers)
    # responses.py treats 200 as the success status of token-style endpoints.
    as_token_status = 200 if status in (200, 201) else status
    payload = read_payload(as_token_status, headers, body, name=_NAME)
    raise_for_failure(as_token_status, headers, payload, name=_NAME, now=sent_at)
    assert payload is not None  # read_payload raises for a success it cannot parse
    return PushedRequest(
        request_uri=_request_uri(payload, status),
        expires_at=sent_at.astimezone(UTC) + timedelta(seconds=_expires_in(payload, status)),
    )


def _request_uri(payload: Mapping[str, Any], status: int) -> str:
    value = payload.get("request_uri")
    if not isinstance(value, str) or not value:
        raise InvalidProviderResponse(
            "The pushed authorization request response has no request_uri", status=status
        )
    if len(value) > MAX_REQUEST_URI_LENGTH:
        raise InvalidProviderResponse(
            "The pushed authorization request response's request_uri is too long", status=status
        )
    return value


def _expires_in(payload: Mapping[str, Any], status: int) -> int:
    value = payload.get("expires_in")
    if value is None:
        # §2.2 makes it REQUIRED: without it the client cannot know the reference still works.
        raise InvalidProviderResponse(
            "The pushed authorization request response has no expires_in", status=status
        )
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        shown = clean_provider_text(repr(value), 32)
        raise InvalidProviderResponse(
            f"The pushed authorization request response has an invalid expires_in ({shown})",
            status=status,
        )
    return min(value, _MAX_EXPIRES_IN)


def pushed_authorization_url(endpoint: str, *, client_id: str, request_uri: str) -> str:
    """The browser's URL after a push: only ``client_id`` and ``request_uri`` (RFC 9126 §4)."""
    check_endpoint(endpoint)
    return append_query(endpoint, {"client_id": client_id, "request_uri": request_uri})

"""Token revocation (RFC 7009; SECURITY R45, §2.6).

The result tells the flow what to do next: ``True`` revoked (or already invalid: RFC 7009
§2.2 answers 200 for unknown tokens too), ``False`` the server cannot revoke this kind of
token (§2.2.1 ``unsupported_token_type``: try the other token, or treat as done). A 503 or
other transient failure raises :class:`ProviderUnavailable` with ``retry_after``: the token
must be assumed to still exist, so revocation is retried later (§2.2.1).
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from oauthconn.http import send
from oauthconn.oauth.client_auth import ClientCredentials, apply_client_auth
from oauthconn.oauth.responses import raise_for_failure, read_payload

_REVOCATION_ENDPOINT = "revocation endpoint"


def revoke_token(
    http: httpx.Client,
    endpoint: str,
    *,
    token: str,
    token_type_hint: str,
    credentials: ClientCredentials,
) -> bool:
    """POST ``token`` (and its ``token_type_hint``) to the revocation endpoint (RFC 7009 §2.1).

    Returns True on success, False for ``unsupported_token_type``. Raises
    :class:`ProviderUnavailable` on 5xx/429, :class:`InvalidClient` and other
    :class:`ProviderError` subclasses on errors, and :class:`TransportError` subclasses when
    no response arrives. Redirects are never followed (R25).
    """
    data = {"token": token}
    if token_type_hint:
        data["token_type_hint"] = token_type_hint
    headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
    apply_client_auth(credentials, data, headers, endpoint=endpoint)
    response = send(http, "POST", endpoint, data=data, headers=headers, follow_redirects=False)
    return revocation_result(response.status_code, response.headers, response.content)


def revocation_result(
    status: int, headers: httpx.Headers, body: bytes, *, now: datetime | None = None
) -> bool:
    """Interpret a revocation response (RFC 7009 §2.2, §2.2.1).

    Any 2xx counts as success whatever the body: §2.2 says 200, but some servers answer
    204, and the client must ignore the body anyway.
    """
    if 200 <= status < 300:
        return True
    payload = read_payload(status, headers, body, name=_REVOCATION_ENDPOINT)
    if payload is not None and payload.get("error") == "unsupported_token_type":
        return False
    raise_for_failure(
        status, headers, payload, name=_REVOCATION_ENDPOINT, now=now or datetime.now(UTC)
    )
    raise AssertionError("unreachable: raise_for_failure raises for every non-2xx status")

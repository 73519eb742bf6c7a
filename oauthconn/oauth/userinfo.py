"""The userinfo endpoint (OpenID Connect Core §5.3).

Only plain JSON responses are used (§5.3.2); signed or encrypted userinfo (``application/jwt``)
is not supported and reported as such. The response's ``sub`` must equal the ID token's
(§5.3.2: otherwise the values "MUST NOT be used").
"""

from __future__ import annotations

import hmac
import json
from typing import Any

import httpx

from oauthconn.exceptions import OAuthConnError, UserinfoFailed
from oauthconn.http import BoundedResponse, send
from oauthconn.oauth.dpop import DPoP, nonce_challenge


def fetch_userinfo(
    http: httpx.Client,
    endpoint: str,
    *,
    access_token: str,
    subject: str,
    dpop: DPoP | None = None,
) -> dict[str, Any]:
    """GET the claims about ``subject`` with the access token as a Bearer token (§5.3.1),
    or for a DPoP-bound token with the DPoP scheme and a proof (RFC 9449 §7.1; one retry
    for a nonce, §9).

    Raises :class:`UserinfoFailed` for a transport error, a non-200 answer, a body that is
    not a JSON object, or a ``sub`` other than ``subject``.
    """
    host = httpx.URL(endpoint).host
    try:
        response = _get(http, endpoint, access_token, dpop)
        if dpop is not None and nonce_challenge(response.status_code, response.headers):
            response = _get(http, endpoint, access_token, dpop)
    except OAuthConnError as err:
        raise UserinfoFailed(f"{UserinfoFailed.message} ({err})") from err
    if response.status_code != 200:
        raise UserinfoFailed(f"{UserinfoFailed.message} ({host}: HTTP {response.status_code}).")
    if response.headers.get("Content-Type", "").startswith("application/jwt"):
        raise UserinfoFailed(f"{UserinfoFailed.message} (signed userinfo is not supported).")
    try:
        claims = json.loads(response.content)
    except (UnicodeDecodeError, ValueError) as err:
        raise UserinfoFailed(f"{UserinfoFailed.message} ({host} sent no JSON).") from err
    if not isinstance(claims, dict):
        raise UserinfoFailed(f"{UserinfoFailed.message} ({host} sent no JSON object).")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not hmac.compare_digest(sub.encode(), subject.encode()):
        raise UserinfoFailed(
            f"{UserinfoFailed.message} (its 'sub' is not the ID token's; OIDC Core §5.3.2)."
        )
    return claims


def _get(
    http: httpx.Client, endpoint: str, access_token: str, dpop: DPoP | None
) -> BoundedResponse:
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    if dpop is not None:
        headers["Authorization"] = f"DPoP {access_token}"
        headers["DPoP"] = dpop.proof("GET", endpoint, access_token=access_token)
    response = send(http, "GET", endpoint, headers=headers)
    if dpop is not None:
        dpop.remember(endpoint, response.headers)
    return response

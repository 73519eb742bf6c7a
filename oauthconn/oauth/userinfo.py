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
from oauthconn.http import send


def fetch_userinfo(
    http: httpx.Client, endpoint: str, *, access_token: str, subject: str
) -> dict[str, Any]:
    """GET the claims about ``subject`` with the access token as a Bearer token (§5.3.1).

    Raises :class:`UserinfoFailed` for a transport error, a non-200 answer, a body that is
    not a JSON object, or a ``sub`` other than ``subject``.
    """
    host = httpx.URL(endpoint).host
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    try:
        response = send(http, "GET", endpoint, headers=headers)
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

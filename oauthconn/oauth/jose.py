"""Two JOSE primitives more than one protocol needs: unpadded base64url and the JWK thumbprint.

PKCE (RFC 7636), DPoP (RFC 9449: ``ath``, ``jkt``) and the ``kid`` of the keys oauthconn
publishes for ``private_key_jwt`` (RFC 7523) all use them, so each is written once.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping

#: RFC 7638 §3.2: the required members of a public JWK, the only ones its thumbprint hashes
#: (RFC 8037 §2 for OKP keys).
THUMBPRINT_MEMBERS: dict[str, tuple[str, ...]] = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}


def b64url(data: bytes) -> str:
    """base64url without the trailing ``=`` padding (RFC 7515 §2, RFC 7636 Appendix A)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(public_jwk: Mapping[str, str]) -> str:
    """The JWK SHA-256 thumbprint (RFC 7638 §3): the required members, sorted, no whitespace."""
    members = THUMBPRINT_MEMBERS[public_jwk["kty"]]
    canonical = json.dumps({name: public_jwk[name] for name in members}, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())

"""Fresh per-attempt secrets: ``state``, ``nonce`` and the PKCE pair (RFC 7636).

All values come from :mod:`secrets` and carry 256 bits, above the 128 bits that RFC 6749
§10.10 and OIDC Core §15.5.2 ask for. ``state`` stays opaque random bytes (RFC 6749 §10.8):
never encode data in it.
"""

from __future__ import annotations

import hashlib
import secrets

from oauthconn.oauth.jose import b64url

#: RFC 7636 §4.1: 32 octets of entropy give a 43-character base64url verifier.
_VERIFIER_OCTETS = 32


def make_state() -> str:
    """Return a new, unguessable ``state`` value (RFC 6749 §10.12, SECURITY R9)."""
    return secrets.token_urlsafe(32)


def make_nonce() -> str:
    """Return a new OIDC ``nonce`` (OIDC Core §3.1.2.1, SECURITY R11)."""
    return secrets.token_urlsafe(32)


def make_code_verifier() -> str:
    """Return a new PKCE ``code_verifier``: 43 characters of base64url (RFC 7636 §4.1)."""
    return b64url(secrets.token_bytes(_VERIFIER_OCTETS))


def code_challenge_s256(verifier: str) -> str:
    """Return ``BASE64URL(SHA256(ASCII(verifier)))`` (RFC 7636 §4.2, method S256)."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())

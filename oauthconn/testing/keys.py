"""The fake provider's signing key: RS256 ID tokens and the JWKS that verifies them."""

from __future__ import annotations

import functools
import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

#: seconds an ID token is valid for
ID_TOKEN_LIFETIME = 300


@functools.cache
def _private_key() -> rsa.RSAPrivateKey:
    # One key per process: generating RSA keys costs tens of milliseconds per test. Each fake
    # provider still publishes it under its own ``kid`` and JWKS URL, so oauthconn's JWKS
    # cache never mixes two providers up, even on a reused port.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class SigningKey:
    """An RS256 key with a fresh ``kid``."""

    def __init__(self) -> None:
        self.kid = secrets.token_urlsafe(8)
        self._key = _private_key()

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set (RFC 7517 §5)."""
        jwk = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def id_token(
        self, *, issuer: str, subject: str, audience: str, nonce: str | None, claims: dict
    ) -> str:
        """A signed ID token (OIDC Core §2) for ``subject`` issued to ``audience``."""
        now = int(time.time())
        payload = {
            **claims,
            "iss": issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "exp": now + ID_TOKEN_LIFETIME,
            "auth_time": now,
        }
        if nonce is not None:
            payload["nonce"] = nonce
        return jwt.encode(payload, self._key, algorithm="RS256", headers={"kid": self.kid})

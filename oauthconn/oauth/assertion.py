"""``private_key_jwt`` client authentication (RFC 7523 §2.2, §3; OIDC Core §9; SECURITY R49).

The client proves who it is with a short-lived JWT signed by its own private key; the
authorization server checks it with the public key it fetched from the JWKS URL the admin
registered (our ``oauthconn:jwks`` view).

Audience: RFC 7523 §3 and the issue ask for the token endpoint, but OIDC Core's 2025 errata
(CVE-2025-27370/27371, "audience injection") and SECURITY R49 say the authorization server's
**issuer identifier, as a single string**: an assertion whose ``aud`` is an endpoint URL of
server A can be replayed by A at server B when B (mis)advertises A's endpoint. The flows pass
the provider's issuer when it has one and the token endpoint otherwise; it is never a list.
The same assertion shape is used at the token, revocation and introspection endpoints.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from oauthconn.exceptions import ConfigurationError

#: RFC 7523 §2.2: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Seconds an assertion is valid: long enough for one request, too short to be worth stealing.
LIFETIME = 60
#: Why a private key was refused: JWS needs an algorithm every server supports for it.
UNSUPPORTED_KEY = "The private key must be RSA or EC P-256 for private_key_jwt."


def signing_algorithm(private_key: object) -> str:
    """RS256 for RSA keys, ES256 for P-256 keys (the two every server supports)."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(
        private_key.curve, ec.SECP256R1
    ):
        return "ES256"
    raise ConfigurationError(UNSUPPORTED_KEY)


def client_assertion(
    *,
    client_id: str,
    audience: str,
    private_key_pem: str,
    key_id: str,
    now: datetime | None = None,
) -> str:
    """A signed client assertion (RFC 7523 §3): ``iss`` = ``sub`` = client id, one ``aud``.

    ``jti`` is random (§3 item 7, so the server can refuse replays); ``exp`` is
    :data:`LIFETIME` seconds away. Raises :class:`ConfigurationError` for an unusable key.
    """
    if not audience:
        raise ConfigurationError("private_key_jwt needs an audience (issuer or token endpoint).")
    try:
        key = serialization.load_pem_private_key(private_key_pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeEncodeError) as err:
        raise ConfigurationError("The connection's private key is not a usable PEM key.") from err
    issued = now or datetime.now(UTC)
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(24),
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=LIFETIME)).timestamp()),
    }
    headers = {"kid": key_id} if key_id else None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigurationError(UNSUPPORTED_KEY)
    return jwt.encode(claims, key, algorithm=signing_algorithm(key), headers=headers)


def add_client_assertion(
    data: dict[str, str],
    *,
    client_id: str,
    audience: str,
    private_key_pem: str | None,
    key_id: str,
) -> None:
    """Put ``client_assertion_type`` and ``client_assertion`` into a request body (§2.2)."""
    if not private_key_pem:
        raise ConfigurationError(
            "Client authentication 'private_key_jwt' needs a key pair; generate one for the "
            "connection first."
        )
    data["client_assertion_type"] = ASSERTION_TYPE
    data["client_assertion"] = client_assertion(
        client_id=client_id, audience=audience, private_key_pem=private_key_pem, key_id=key_id
    )

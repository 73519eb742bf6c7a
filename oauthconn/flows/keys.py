"""The key pair of a ``private_key_jwt`` connection: generation, rollover and the public JWKS.

The private key is stored encrypted (``Connection.private_key``) and never leaves the app;
the public keys are served as a JWK Set (RFC 7517 §5) by the ``oauthconn:jwks`` view, whose
URL the admin registers at the provider. Rotating keeps the previous public key published for
:data:`ROLLOVER_DAYS` days, so assertions signed just before the rotation and servers that
cached our JWKS keep working while they pick up the new key.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from oauthconn.conf import oauthconn_settings
from oauthconn.models import Connection
from oauthconn.oauth.jose import jwk_thumbprint

#: How long a replaced public key stays in the JWKS.
ROLLOVER_DAYS = 7
#: Our bookkeeping inside a stored JWK; removed before the key is served.
RETIRED_AT = "oauthconn_retired_at"
KEY_TYPES = ("RSA", "EC")


def generate_key_pair(kind: str = "RSA") -> tuple[str, dict[str, Any]]:
    """A new private key (PKCS#8 PEM) and its public JWK with ``kid``, ``alg``, ``use``.

    RSA 2048 signs RS256, EC P-256 signs ES256. The ``kid`` is the RFC 7638 thumbprint, so it
    names the key and nothing else.
    """
    if kind == "RSA":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "EC":
        private = ec.generate_private_key(ec.SECP256R1())
    else:
        raise ValueError(f"kind must be one of {KEY_TYPES}")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem.decode("ascii"), public_jwk_for(private)


def public_jwk_for(private: Any) -> dict[str, Any]:
    """The public JWK of a private key we can sign with: RSA (RS256) or EC P-256 (ES256)."""
    if isinstance(private, rsa.RSAPrivateKey):
        jwk_json, alg = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()), "RS256"
    elif isinstance(private, ec.EllipticCurvePrivateKey) and private.curve.name == "secp256r1":
        jwk_json, alg = jwt.algorithms.ECAlgorithm.to_jwk(private.public_key()), "ES256"
    else:
        raise ValueError("Only RSA and EC P-256 private keys are supported.")
    public_jwk = json.loads(jwk_json)
    public_jwk.update({"kid": jwk_thumbprint(public_jwk), "alg": alg, "use": "sig"})
    return public_jwk


def rotate_key(connection: Connection, kind: str = "RSA", *, now: datetime | None = None) -> str:
    """Give ``connection`` a new key pair; keep the old public key published for a while.

    Returns the new ``kid``. The first call simply creates the pair. Retired keys older than
    :data:`ROLLOVER_DAYS` are dropped from the JWKS.
    """
    pem, _ = generate_key_pair(kind)
    return install_key(connection, pem, now=now)


def install_key(connection: Connection, pem: str, *, now: datetime | None = None) -> str:
    """Make an existing private key (PEM) the connection's signing key, as a rotation does.

    The ``kid`` and published public key are derived from it, so the JWKS always matches the
    key that signs. Raises ``ValueError`` for a key that cannot be loaded or signed with.
    """
    now = now or timezone.now()
    private = serialization.load_pem_private_key(pem.encode(), password=None)
    public_jwk = public_jwk_for(private)
    with transaction.atomic():
        locked = Connection.objects.select_for_update().get(pk=connection.pk)
        kept = [_retired(key, now) for key in locked.published_jwks if _still_published(key, now)]
        kept = [key for key in kept if key.get("kid") != public_jwk["kid"]]
        locked.private_key = pem
        locked.private_key_id = public_jwk["kid"]
        locked.published_jwks = [public_jwk, *kept]
        locked.save(update_fields=["private_key", "private_key_id", "published_jwks", "updated_at"])
    connection.refresh_from_db()
    return public_jwk["kid"]


def _retired(key: dict[str, Any], now: datetime) -> dict[str, Any]:
    return key if RETIRED_AT in key else {**key, RETIRED_AT: now.isoformat()}


def _still_published(key: dict[str, Any], now: datetime) -> bool:
    retired_at = key.get(RETIRED_AT)
    if retired_at is None:
        return True
    return datetime.fromisoformat(retired_at) > now - timedelta(days=ROLLOVER_DAYS)


def public_jwks(connection: Connection, *, now: datetime | None = None) -> dict[str, Any]:
    """The JWK Set to serve: the current key first, then retired keys still in rollover."""
    now = now or timezone.now()
    keys = [
        {name: value for name, value in key.items() if name != RETIRED_AT}
        for key in connection.published_jwks
        if isinstance(key, dict) and _still_published(key, now)
    ]
    return {"keys": keys}


def jwks_url(connection: Connection) -> str:
    """The absolute URL of the connection's JWK Set, to register at the provider.

    Built from ``OAUTHCONN["REDIRECT_BASE_URL"]`` like :attr:`Connection.redirect_uri`, never
    from the request's Host header, so a forged Host cannot change what the admin registers.
    """
    base = oauthconn_settings.REDIRECT_BASE_URL.rstrip("/")
    return base + reverse("oauthconn:jwks", args=[connection.slug])


def current_key_type(connection: Connection) -> str | None:
    """``"RSA"`` or ``"EC"`` for the key that signs now, or None without a key pair."""
    for key in connection.published_jwks:
        if isinstance(key, dict) and key.get("kid") == connection.private_key_id:
            return key.get("kty")
    return None

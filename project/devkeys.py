"""A development encryption key for the demo, so the site starts with zero configuration."""

from __future__ import annotations

import sys
from pathlib import Path

from cryptography.fernet import Fernet


def development_encryption_key(folder: Path) -> str:
    """Return the key in ``folder/encryption.key``, creating it on first use.

    Only for the demo: production sets OAUTHCONN_ENCRYPTION_KEYS from a secret store.
    """
    path = folder / "encryption.key"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(Fernet.generate_key().decode())
        path.chmod(0o600)
        print(
            f"oauthconn demo: created a development encryption key in {path}; "
            "set OAUTHCONN_ENCRYPTION_KEYS in production.",
            file=sys.stderr,
        )
    return path.read_text().strip()


def development_oidc_key(folder: Path) -> str:
    """Return the PEM RSA key in ``folder/oidc.key`` for the demo server's ID tokens.

    The demo authorization server (django-oauth-toolkit) signs ID tokens with it (RS256).
    Created on first use like the encryption key; a real provider keeps its own.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    path = folder / "oidc.key"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.write_bytes(pem)
        path.chmod(0o600)
    return path.read_text()

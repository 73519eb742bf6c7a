"""A development encryption key for the demo, so the site starts with zero configuration."""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Sequence
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


def development_credentials(folder: Path, names: Sequence[str]) -> dict[str, str]:
    """Return a stable random secret for each of ``names``, kept in ``demo-credentials.json``.

    The demo's passwords and client secrets live here, beside the development keys, so that
    running ``demo_setup`` again prints the same logins and keeps the clients that connections
    made in the wizard were given (a new secret would make them fail with ``invalid_client``).
    A missing name gets a new secret, which is saved; existing ones are never changed.
    """
    path = folder / "demo-credentials.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [name for name in names if name not in stored]
    if missing:
        stored.update({name: secrets.token_urlsafe(24) for name in missing})
        folder.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
    return {name: stored[name] for name in names}

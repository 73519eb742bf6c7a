"""Encryption at rest: a MultiFernet keyring and a sealed value that never shows its secret.

Keys come from ``OAUTHCONN["ENCRYPTION_KEYS"]``, newest first: the first key encrypts, every
key decrypts, so rotation is "add a key in front, run ``oauthconn_rotate_keys``, drop the old
key". Keys are never derived from ``SECRET_KEY``: rotating that would make every token
unreadable.
"""

from __future__ import annotations

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import DecryptionFailed, EncryptionKeyError


@functools.lru_cache(maxsize=8)
def _keyring_for(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise EncryptionKeyError("OAUTHCONN['ENCRYPTION_KEYS'] is empty.")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError) as err:
        raise EncryptionKeyError() from err


def keyring() -> MultiFernet:
    """The MultiFernet for the configured keys (cached per key list, read at call time)."""
    keys = oauthconn_settings.ENCRYPTION_KEYS
    if isinstance(keys, str):
        keys = [keys]
    return _keyring_for(tuple(keys))


def encrypt(plaintext: str) -> str:
    return keyring().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return keyring().decrypt(ciphertext.encode()).decode()
    except InvalidToken as err:
        raise DecryptionFailed() from err


class Sealed:
    """A stored secret: holds the ciphertext, decrypts only on ``reveal()``.

    ``str()`` and ``repr()`` show ``***``, so f-strings, debug pages and tracebacks do not leak
    it; a value that cannot be decrypted fails only where it is used, not when a list of rows
    is loaded.
    """

    __slots__ = ("ciphertext", "_plaintext")

    def __init__(self, ciphertext: str) -> None:
        self.ciphertext = ciphertext
        self._plaintext: str | None = None

    @classmethod
    def seal(cls, plaintext: str) -> Sealed:
        sealed = cls(encrypt(plaintext))
        sealed._plaintext = plaintext
        return sealed

    def reveal(self) -> str:
        """The plaintext (decrypted once, then kept); raises ``DecryptionFailed``."""
        if self._plaintext is None:
            self._plaintext = decrypt(self.ciphertext)
        return self._plaintext

    @staticmethod
    def reveal_optional(value: Sealed | None) -> str | None:
        """The plaintext of a secret that may be unset (``None`` stays ``None``).

        The one way to open an optional secret (a public client's secret, a nonce only OpenID
        attempts have); where the secret must exist, check for ``None`` and call ``reveal()``.
        """
        return value.reveal() if value is not None else None

    def rotated(self) -> Sealed:
        """The same secret encrypted with the newest key (MultiFernet.rotate)."""
        try:
            return Sealed(keyring().rotate(self.ciphertext.encode()).decode())
        except InvalidToken as err:
            raise DecryptionFailed() from err

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sealed) and other.reveal() == self.reveal()

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        return "***"

    def __repr__(self) -> str:
        return "<Sealed ***>"

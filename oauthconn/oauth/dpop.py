"""DPoP: sender-constrained tokens (RFC 9449; SECURITY R52-R54).

A grant gets its own key pair (:func:`make_key`); every token request and every resource call
made with the grant carries a fresh proof JWT signed by it (:meth:`DPoPKey.proof`, RFC 9449
§4.2): ``typ: dpop+jwt``, the public key as ``jwk`` (never the private part), and claims
``jti`` (random, unique per proof), ``htm``, ``htu`` (the URL without query and fragment),
``iat``, ``nonce`` when the server gave one (§8, §9) and, at a resource, ``ath`` = base64url of
the access token's SHA-256 (§4.2, §7). A token bound to the key is useless without it.

Servers may demand a nonce: ``use_dpop_nonce`` with a ``DPoP-Nonce`` header, as a token error
(§8) or a ``WWW-Authenticate: DPoP error="use_dpop_nonce"`` challenge (§9).
:func:`nonce_challenge` recognizes both; the caller retries once with the nonce. The
nonces a server sent are kept per origin in a :data:`NonceStore` the caller passes in, so this
module stays pure (no state of its own).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, RSAPSSAlgorithm

from oauthconn.exceptions import ConfigurationError
from oauthconn.oauth.jose import THUMBPRINT_MEMBERS, b64url, jwk_thumbprint

#: The proof's media type (RFC 9449 §4.2).
PROOF_TYPE = "dpop+jwt"
#: Our preference when the server supports several (ES256: small, fast, universally supported).
PREFERRED_ALGS = ("ES256", "EdDSA", "ES384", "PS256", "RS256")
#: origin ("https://host:port") -> the last nonce that server sent (RFC 9449 §8.2)
NonceStore = MutableMapping[str, str]

# RFC 9449 §8.1: nonce = 1*NQCHAR (printable ASCII but '"' and '\').
_NONCE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,512}")
# A DPoP challenge (RFC 9449 §7.1) and the rest of the header up to another scheme's.
_DPOP_CHALLENGE = re.compile(
    r"(?:^|,)\s*DPoP(?:\s+(.*?))?(?=,\s*[A-Za-z][\w-]*(?:\s+[\w-]+=|\s*$)|$)", re.IGNORECASE
)
_ERROR_PARAM = re.compile(r'(?:^|[\s,])error\s*=\s*"?([\w.-]+)', re.IGNORECASE)


def _ec(curve: ec.EllipticCurve) -> Callable[[], Any]:
    return lambda: ec.generate_private_key(curve)


def _rsa() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


#: alg -> (key generator, PyJWT algorithm class that serializes it as a JWK)
_KEY_TYPES: dict[str, tuple[Callable[[], Any], Any]] = {
    "ES256": (_ec(ec.SECP256R1()), ECAlgorithm),
    "ES384": (_ec(ec.SECP384R1()), ECAlgorithm),
    "EdDSA": (ed25519.Ed25519PrivateKey.generate, OKPAlgorithm),
    "PS256": (_rsa, RSAPSSAlgorithm),
    "RS256": (_rsa, RSAAlgorithm),
}


def choose_algorithm(supported: Sequence[str] | None) -> str:
    """The proof algorithm for a server advertising ``supported``
    (``dpop_signing_alg_values_supported``, RFC 9449 §5.1): ES256 unless it lists others only.

    An empty or missing list means the server said nothing: ES256. Raises
    :class:`ConfigurationError` when it lists none we can sign with.
    """
    if not supported:
        return "ES256"
    for alg in PREFERRED_ALGS:
        if alg in supported:
            return alg
    raise ConfigurationError(
        f"The provider accepts DPoP proofs signed with {', '.join(supported)} only; "
        f"oauthconn signs with {', '.join(PREFERRED_ALGS)}."
    )


@dataclass(frozen=True)
class DPoPKey:
    """A grant's DPoP key pair. ``private_jwk`` is a secret: stored encrypted, never shown."""

    alg: str
    private_jwk: str = field(repr=False)

    def __repr__(self) -> str:
        return f"DPoPKey(alg={self.alg!r}, jkt={self.thumbprint()!r})"

    @classmethod
    def from_json(cls, stored: str) -> DPoPKey:
        """A key as :meth:`to_json` stored it; :class:`ConfigurationError` when unusable."""
        try:
            data = json.loads(stored)
            key = cls(alg=data["alg"], private_jwk=json.dumps(data["jwk"]))
            key._private_key()  # fail here, not in the middle of a request
        except (ValueError, KeyError, TypeError, jwt.InvalidKeyError) as err:
            raise ConfigurationError("The grant's DPoP key is not usable.") from err
        return key

    def to_json(self) -> str:
        """What is stored (encrypted) for the grant: the algorithm and the private JWK."""
        return json.dumps({"alg": self.alg, "jwk": json.loads(self.private_jwk)})

    def _algorithm(self) -> Any:
        if self.alg not in _KEY_TYPES:
            raise ConfigurationError(f"Unsupported DPoP algorithm {self.alg!r}.")
        return _KEY_TYPES[self.alg][1]

    def _private_key(self) -> Any:
        return _loaded(self._algorithm(), self.private_jwk)[0]

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK: only the members RFC 7638 §3.2 hashes, no private part."""
        return dict(_loaded(self._algorithm(), self.private_jwk)[1])

    def thumbprint(self) -> str:
        """The JWK SHA-256 thumbprint (RFC 7638), the ``jkt`` a bound token names (§6.1)."""
        return jwk_thumbprint(self.public_jwk())

    def proof(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        now: datetime | None = None,
    ) -> str:
        """A DPoP proof JWT for one request (RFC 9449 §4.2); never reuse it (unique ``jti``)."""
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(24),
            "htm": method.upper(),
            "htu": target_uri(url),
            "iat": int((now or datetime.now(UTC)).timestamp()),
        }
        if nonce:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        headers = {"typ": PROOF_TYPE, "jwk": self.public_jwk()}
        return jwt.encode(claims, self._private_key(), algorithm=self.alg, headers=headers)


@functools.lru_cache(maxsize=256)
def _loaded(algorithm: Any, private_jwk: str) -> tuple[Any, tuple[tuple[str, str], ...]]:
    # Parsing a JWK costs more than signing with it; a busy grant signs every call.
    private = algorithm.from_jwk(private_jwk)
    public = json.loads(algorithm.to_jwk(private.public_key()))
    members = THUMBPRINT_MEMBERS[public["kty"]]
    return private, tuple((name, public[name]) for name in members)


def make_key(alg: str = "ES256") -> DPoPKey:
    """A new key pair for one grant (RFC 9449 §2: one per client instance or grant)."""
    if alg not in _KEY_TYPES:
        raise ConfigurationError(f"Unsupported DPoP algorithm {alg!r}.")
    generate, algorithm = _KEY_TYPES[alg]
    return DPoPKey(alg=alg, private_jwk=algorithm.to_jwk(generate()))


def target_uri(url: str | httpx.URL) -> str:
    """``htu``: the request URI without query and fragment (RFC 9449 §4.2, §4.3 item 9)."""
    return str(httpx.URL(str(url)).copy_with(query=None, fragment=None))


def access_token_hash(access_token: str) -> str:
    """``ath``: base64url (no padding) of the SHA-256 of the token's ASCII (RFC 9449 §4.2)."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest())


def origin(url: str | httpx.URL) -> str:
    """The key of a server's nonce in a :data:`NonceStore`."""
    parsed = httpx.URL(str(url))
    return f"{parsed.scheme}://{parsed.netloc.decode('ascii')}"


def server_nonce(headers: Mapping[str, str]) -> str | None:
    """The ``DPoP-Nonce`` header (RFC 9449 §8.1) if well formed, else None."""
    value = httpx.Headers(headers).get("dpop-nonce")
    return value if value is not None and _NONCE.fullmatch(value) else None


def challenge_error(headers: Mapping[str, str]) -> str | None:
    """The ``error`` of a ``WWW-Authenticate: DPoP ...`` challenge (RFC 9449 §7.1), if any."""
    for value in httpx.Headers(headers).get_list("www-authenticate"):
        challenge = _DPOP_CHALLENGE.search(value)
        error = _ERROR_PARAM.search(challenge.group(1) or "") if challenge else None
        if error:
            return error.group(1)
    return None


def nonce_challenge(
    status: int, headers: Mapping[str, str], error: str | None = None
) -> str | None:
    """The nonce to retry with when a response demands one (RFC 9449 §8, §9), else None.

    ``error`` is the token endpoint's JSON ``error`` (§8: 400 ``use_dpop_nonce``); a resource
    says it in its ``WWW-Authenticate`` challenge (§9: 401). Without a usable ``DPoP-Nonce``
    header there is nothing to retry with.
    """
    asked = error == "use_dpop_nonce" or (
        status == 401 and challenge_error(headers) == "use_dpop_nonce"
    )
    return server_nonce(headers) if asked and status in (400, 401) else None


@dataclass(frozen=True)
class DPoP:
    """What a request needs to prove possession: the grant's key and the servers' nonces."""

    key: DPoPKey
    nonces: NonceStore = field(default_factory=dict)

    def proof(self, method: str, url: str | httpx.URL, *, access_token: str | None = None) -> str:
        """A proof for this request, with the last nonce its server sent, if any."""
        nonce = self.nonces.get(origin(url))
        return self.key.proof(method, url, access_token=access_token, nonce=nonce)

    def remember(self, url: str | httpx.URL, headers: Mapping[str, str]) -> None:
        remember_nonce(self.nonces, url, headers)


def remember_nonce(store: NonceStore, url: str | httpx.URL, headers: Mapping[str, str]) -> None:
    """Keep a server's newest nonce for its next proof (RFC 9449 §8.2: any response may
    carry one)."""
    nonce = server_nonce(headers)
    if nonce is not None:
        store[origin(url)] = nonce

"""ID token validation (OpenID Connect Core §3.1.3.7; SECURITY R32, R33, catalogue §2.4).

Even in the code flow, where OIDC Core §3.1.3.7 step 6 would allow trusting TLS instead, the
signature is verified: endpoints are entered by admins and several servers are configured
side by side (R32). The order of checks follows §3.1.3.7; every failure raises its own
:class:`~oauthconn.exceptions.InvalidIDToken` subclass. Claims are checked here rather than
by PyJWT so that each gets its own message and ``now`` can be passed in.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt

from oauthconn.exceptions import (
    ConfigurationError,
    IDTokenAlgorithmNotAllowed,
    IDTokenAudienceMismatch,
    IDTokenExpired,
    IDTokenIssuedInFuture,
    IDTokenIssuerMismatch,
    IDTokenNonceMismatch,
    IDTokenSignatureInvalid,
    MalformedIDToken,
)
from oauthconn.oauth import jwks

#: Asymmetric algorithms an admin or metadata may allow (RFC 7518 §3.1; never ``none``).
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: Only with the client secret, and only when listed for the provider (OIDC Core §10.1).
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
DEFAULT_ALGORITHMS = ("RS256",)
#: Clock skew accepted on ``exp`` and ``iat`` (OIDC Core §2: "usually no more than a few minutes").
LEEWAY = 120
#: An ``iat`` older than this is refused (§3.1.3.7 step 10 lets clients bound it).
MAX_AGE = 24 * 3600
#: RFC 8725 §3 has no size; real ID tokens are a few KB (catalogue I16).
MAX_LENGTH = 64 * 1024
#: Claims kept for display (OIDC Core §5.1); never used to identify the account (R34).
DISPLAY_CLAIMS = ("name", "email", "preferred_username")


@dataclass(frozen=True)
class IDTokenExpectations:
    """What the ID token of one authorization must say."""

    issuer: str
    client_id: str
    #: None for a refreshed ID token (OIDC Core §12.2): there is no nonce to compare then
    nonce: str | None
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    jwks_uri: str = ""
    client_secret: str | None = field(default=None, repr=False)


def allowed_algorithms(configured: Iterable[str]) -> tuple[str, ...]:
    """A provider's allow-list: its configured algorithms, or RS256 when it names none.

    Anything outside the asymmetric and HMAC sets (``none`` above all) is dropped.
    """
    allowed = tuple(a for a in configured if a in ASYMMETRIC_ALGORITHMS | HMAC_ALGORITHMS)
    return allowed or DEFAULT_ALGORITHMS


def validate_id_token(
    http: httpx.Client, id_token: str, expect: IDTokenExpectations, *, now: datetime | None = None
) -> dict[str, Any]:
    """Verify ``id_token`` (OIDC Core §3.1.3.7) and return its claims."""
    header = _header(id_token)
    alg = header.get("alg")
    if alg not in expect.algorithms:
        raise IDTokenAlgorithmNotAllowed(
            f"{IDTokenAlgorithmNotAllowed.message} (alg {_show(alg)}; allowed: "
            f"{', '.join(expect.algorithms)})."
        )
    claims = _verified_claims(id_token, _key(http, header, alg, expect), alg)
    check_claims(claims, expect, now=now or datetime.now(UTC))
    return claims


def _header(id_token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS with three parts (RFC 7515 §7.1, catalogue I16)."""
    if not isinstance(id_token, str) or len(id_token) > MAX_LENGTH or id_token.count(".") != 2:
        raise MalformedIDToken()
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError as err:
        raise MalformedIDToken() from err
    # RFC 7515 §4.1.11: we understand no critical extension, so any "crit" is fatal.
    if "crit" in header:
        raise MalformedIDToken(f"{MalformedIDToken.message} (unsupported 'crit' header).")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise MalformedIDToken(f"{MalformedIDToken.message} ('kid' is not a string).")
    return header


def _key(
    http: httpx.Client, header: Mapping[str, Any], alg: str, expect: IDTokenExpectations
) -> Any:  # HMAC bytes or a cryptography public key, as jwt.decode takes them
    """HMAC: the client secret's bytes (OIDC Core §10.1). Otherwise: a key from the JWKS."""
    if alg in HMAC_ALGORITHMS:
        if not expect.client_secret:
            raise IDTokenAlgorithmNotAllowed(f"{alg} ID tokens need a client secret; none is set.")
        return expect.client_secret.encode("utf-8")
    if not expect.jwks_uri:
        raise ConfigurationError(
            "The provider has no JWKS URI, so ID tokens cannot be verified: run discovery or "
            "enter the JWKS URI."
        )
    return jwks.signing_key(http, expect.jwks_uri, header.get("kid"), alg)


def _verified_claims(id_token: str, key: Any, alg: str) -> dict[str, Any]:
    try:
        payload = jwt.PyJWS().decode(id_token, key, algorithms=[alg])
    except jwt.InvalidSignatureError as err:
        raise IDTokenSignatureInvalid() from err
    except jwt.PyJWTError as err:
        raise MalformedIDToken() from err
    try:
        claims = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as err:
        raise MalformedIDToken(f"{MalformedIDToken.message} (payload is not JSON).") from err
    if not isinstance(claims, dict):
        raise MalformedIDToken(f"{MalformedIDToken.message} (payload is not an object).")
    return claims


def check_claims(claims: Mapping[str, Any], expect: IDTokenExpectations, *, now: datetime) -> None:
    """§3.1.3.7 steps 2-3, 9-11: ``iss``, ``aud``/``azp``, ``exp``, ``iat``, ``nonce``, ``sub``."""
    if claims.get("iss") != expect.issuer:
        raise IDTokenIssuerMismatch(
            f"{IDTokenIssuerMismatch.message} (got {_show(claims.get('iss'))}, "
            f"expected {expect.issuer!r})."
        )
    _check_audience(claims, expect.client_id)
    _check_times(claims, now.timestamp())
    if expect.nonce is not None:
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(nonce, expect.nonce):
            raise IDTokenNonceMismatch()
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise MalformedIDToken(f"{MalformedIDToken.message} ('sub' is missing or invalid).")


def _check_audience(claims: Mapping[str, Any], client_id: str) -> None:
    """``aud`` must be this client only; R32 trusts no other audience (catalogue I1-I3)."""
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or client_id not in audiences:
        raise IDTokenAudienceMismatch()
    if any(a != client_id for a in audiences):
        raise IDTokenAudienceMismatch(
            f"{IDTokenAudienceMismatch.message} (it also names audiences this client does not "
            "trust)."
        )
    if "azp" in claims and claims["azp"] != client_id:
        raise IDTokenAudienceMismatch(f"{IDTokenAudienceMismatch.message} ('azp' differs).")


def _check_times(claims: Mapping[str, Any], now: float) -> None:
    exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
    if exp is None or iat is None:
        raise MalformedIDToken(f"{MalformedIDToken.message} ('exp' or 'iat' is missing).")
    if exp <= now - LEEWAY:
        raise IDTokenExpired()
    if iat > now + LEEWAY or iat < now - MAX_AGE:
        raise IDTokenIssuedInFuture()


def _number(value: object) -> float | None:
    """A JSON number as a float; ``None`` for anything else (``true`` is not a number here)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def display_claims(claims: Mapping[str, Any]) -> dict[str, str]:
    """The display claims present as strings, capped (the admin shows who authorized)."""
    return {
        name: claims[name][:255]
        for name in DISPLAY_CLAIMS
        if isinstance(claims.get(name), str) and claims[name]
    }


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"

"""The issuer's signing keys: JWKS fetch, a process-memory cache, key selection (SECURITY R33).

Keys come only from the provider's configured ``jwks_uri`` (never from ``jwk``/``jku``/``x5u``/
``x5c`` token headers, OIDC Core §2, RFC 8725 §3.10), are cached per URI for :data:`JWKS_TTL`
seconds, and are selected by ``kid`` (an opaque string) and by the algorithm's key type. An
unknown ``kid`` triggers one refetch (key rotation, OIDC Core §10.1.1), at most once per
:data:`REFETCH_INTERVAL` per URI, so a flood of forged tokens cannot make us flood the
provider. When a refetch fails, keys already cached keep working (catalogue I13).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from oauthconn.exceptions import IDTokenKeyNotFound, JWKSUnavailable, OAuthConnError
from oauthconn.http import send

#: Seconds a fetched JWKS is used before it is fetched again.
JWKS_TTL = 3600.0
#: At most one extra fetch per URI in this many seconds (unknown kid, R33).
REFETCH_INTERVAL = 60.0

#: JOSE algorithm prefix -> the JWK key type it needs (RFC 7518 §3.1, §6.1).
_KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


@dataclass(frozen=True)
class _Entry:
    keys: tuple[dict[str, Any], ...]
    fetched_at: float
    #: when an unknown kid last caused a fetch: the rate limit applies to those only, so a
    #: rotation right after the cache was filled is still picked up
    refetched_at: float | None = None


_cache: dict[str, _Entry] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every cached JWKS (tests, or after a provider's keys were revoked)."""
    with _lock:
        _cache.clear()


def signing_key(http: httpx.Client, jwks_uri: str, kid: str | None, alg: str) -> Any:
    """The verification key for a JWS with header ``kid`` and ``alg`` (OIDC Core §10.1).

    Returns a ``cryptography`` public key. Raises :class:`JWKSUnavailable` when no JWKS can be
    had, :class:`IDTokenKeyNotFound` when no single key matches even after one refetch.
    """
    now = time.monotonic()
    entry = _cache.get(jwks_uri)
    if entry is None or now - entry.fetched_at > JWKS_TTL:
        entry = _refresh(http, jwks_uri, entry, now)
    found = _matching(entry.keys, kid, alg)
    if not found and kid is not None and _may_refetch(entry, now):
        entry = _refresh(http, jwks_uri, entry, now, unknown_kid=True)
        found = _matching(entry.keys, kid, alg)
    if len(found) != 1:
        why = "several keys match" if found else "no key matches"
        raise IDTokenKeyNotFound(f"{IDTokenKeyNotFound.message} ({why} kid {_show(kid)}, {alg}).")
    try:
        return jwt.PyJWK(found[0], algorithm=alg).key
    except jwt.PyJWTError as err:
        raise IDTokenKeyNotFound(f"The JWKS key {_show(kid)} cannot be used for {alg}.") from err


def _may_refetch(entry: _Entry, now: float) -> bool:
    return entry.refetched_at is None or now - entry.refetched_at >= REFETCH_INTERVAL


def _refresh(
    http: httpx.Client, jwks_uri: str, stale: _Entry | None, now: float, unknown_kid: bool = False
) -> _Entry:
    """Fetch and cache; on failure keep serving stale keys if there are any."""
    refetched_at = now if unknown_kid else (stale.refetched_at if stale else None)
    try:
        keys = fetch_jwks(http, jwks_uri)
    except JWKSUnavailable:
        if stale is None:
            raise
        # The failure counts as a fetch, so the limits also hold while the provider is down.
        entry = _Entry(stale.keys, now, refetched_at)
    else:
        entry = _Entry(keys, now, refetched_at)
    with _lock:
        _cache[jwks_uri] = entry
    return entry


def fetch_jwks(http: httpx.Client, jwks_uri: str) -> tuple[dict[str, Any], ...]:
    """GET a JWK Set (RFC 7517 §5) and return its key objects; anything else fails closed."""
    host = httpx.URL(jwks_uri).host
    try:
        response = send(http, "GET", jwks_uri, headers={"Accept": "application/json"})
    except OAuthConnError as err:
        raise JWKSUnavailable(f"{JWKSUnavailable.message} ({host}: {err})") from err
    if response.status_code != 200:
        raise JWKSUnavailable(
            f"{JWKSUnavailable.message} ({host} answered HTTP {response.status_code})."
        )
    try:
        document = json.loads(response.content)
    except (UnicodeDecodeError, ValueError) as err:
        raise JWKSUnavailable(f"{JWKSUnavailable.message} ({host} sent no JSON).") from err
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise JWKSUnavailable(f"{JWKSUnavailable.message} ({host} sent no 'keys' list).")
    return tuple(key for key in keys if isinstance(key, dict))


def _matching(keys: tuple[dict[str, Any], ...], kid: str | None, alg: str) -> list[dict]:
    """Signature keys for ``alg``; with a ``kid``, only that one (catalogue I14)."""
    kty = _KEY_TYPE.get(alg[:2])
    return [
        key
        for key in keys
        if key.get("kty") == kty
        and key.get("use", "sig") == "sig"
        and key.get("alg", alg) == alg
        and (kid is None or key.get("kid") == kid)
    ]


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:59] + "…"

"""DPoP on the database side: which key a grant's requests prove possession of (RFC 9449).

A grant's key is made when its first token request is sent (code exchange, or the first
client credentials request) and stored, encrypted, with the tokens it binds
(``Token.dpop_key``, via ``TokenSet.dpop_key``). It is kept for as long as they are: a DPoP
refresh token is bound to it, so a new key means authorizing again (SECURITY R53). A grant
that has a key uses it even after the connection's ``use_dpop`` was switched off, until it is
reauthorized: its tokens are useless without it.

The nonces servers send (RFC 9449 §8.2) are kept per origin in this process
(:data:`NONCES`); a nonce another process sent costs one retry, nothing more.
"""

from __future__ import annotations

import threading

import httpx

from oauthconn.exceptions import ConfigurationError, DPoPNonceRejected
from oauthconn.models import Connection, Token
from oauthconn.oauth import dpop
from oauthconn.oauth.dpop import DPoP, DPoPKey, NonceStore, choose_algorithm, make_key
from oauthconn.oauth.token_response import TokenSet

#: DPoP-bound tokens use this scheme (RFC 9449 §7.1) and token_type.
SCHEME = "DPoP"


class _Nonces(dict[str, str]):
    """A small bounded map: one entry per server origin this process talks to."""

    LIMIT = 1024
    _lock = threading.Lock()

    def __setitem__(self, key: str, value: str) -> None:
        with self._lock:
            if key not in self and len(self) >= self.LIMIT:
                self.clear()  # servers give a new nonce on the next request anyway
            super().__setitem__(key, value)


#: origin -> the last nonce that server sent (shared by every grant in this process)
NONCES: NonceStore = _Nonces()


def new_binding(connection: Connection) -> DPoP | None:
    """A new key for a new grant of ``connection``, when it uses DPoP (else None)."""
    if not connection.use_dpop:
        return None
    return DPoP(make_key(choose_algorithm(connection.provider.dpop_signing_algs)), NONCES)


def binding_for(connection: Connection, token: Token | None) -> DPoP | None:
    """The DPoP binding of ``token``'s next token request: its own key if it has one, a new
    one for a grant of a DPoP connection that has none yet, else None (a Bearer grant)."""
    if token is not None and token.dpop_key is not None:
        return DPoP(stored_key(token), NONCES)
    return new_binding(connection)


def binding_of(tokens: TokenSet) -> DPoP | None:
    """The binding of a token response not stored yet (userinfo right after the exchange)."""
    if tokens.token_type != SCHEME or not tokens.dpop_key:
        return None
    return DPoP(DPoPKey.from_json(tokens.dpop_key), NONCES)


def stored_key(token: Token) -> DPoPKey:
    """The grant's key; :class:`ConfigurationError` when it has none or it is unusable."""
    if token.dpop_key is None:
        raise ConfigurationError("This grant's tokens are DPoP-bound but it has no DPoP key.")
    try:
        return DPoPKey.from_json(token.dpop_key.reveal())  # DecryptionFailed passes through
    except ConfigurationError as err:
        raise ConfigurationError(f"{err} Reauthorize the connection.") from err


def is_bound(token: Token) -> bool:
    """True when ``token``'s access token must be sent with a proof (``Authorization: DPoP``)."""
    return token.token_type == SCHEME


def authorize(request: httpx.Request, token: Token) -> None:
    """Put ``token`` on ``request``: ``Bearer`` (RFC 6750 §2.1), or for a bound token the
    ``DPoP`` scheme and a fresh proof with ``ath`` (RFC 9449 §7.1), for this exact request."""
    access_token = token.require_access_token().reveal()
    if not is_bound(token):
        request.headers["Authorization"] = f"Bearer {access_token}"
        return
    binding = DPoP(stored_key(token), NONCES)
    request.headers["Authorization"] = f"{SCHEME} {access_token}"
    request.headers["DPoP"] = binding.proof(request.method, request.url, access_token=access_token)


def wants_nonce(response: httpx.Response, token: Token) -> bool:
    """After a resource call with ``token``: keep the nonce the resource sent, and say whether
    it refused the proof for want of it (RFC 9449 §9), so the call is sent again, once."""
    if not is_bound(token):
        return False
    dpop.remember_nonce(NONCES, response.request.url, response.headers)
    return dpop.nonce_challenge(response.status_code, response.headers) is not None


def raise_if_nonce_refused(response: httpx.Response, token: Token) -> None:
    """The retry with the resource's own nonce was refused for the nonce again: raise
    :class:`DPoPNonceRejected` rather than hand the caller a 401 it cannot act on."""
    if wants_nonce(response, token):
        raise DPoPNonceRejected(
            "The API refused the DPoP nonce it had just sent; try again later",
            status=response.status_code,
            error="use_dpop_nonce",
        )

"""The one exception tree of oauthconn.

Every error the app raises for code to catch is an ``OAuthConnError``. Subclasses mostly set
class attributes; messages are fixed sentences plus what the provider said (``error`` and a
capped ``error_description``), never tokens, secrets, codes or verifiers. Where Django already
has a handler for a kind of error, the class mixes in Django's base: a forged callback is a
``SuspiciousOperation`` (answered with 400), a setup mistake is ``ImproperlyConfigured``.

Whether a failure is temporary or permanent is decided here and nowhere else: each class sets
``permanent``, and every flow that retries (refresh, client credentials, revocation) asks
:func:`is_permanent`.
"""

from __future__ import annotations

import re

import httpx
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, SuspiciousOperation

#: RFC 6749 §4.1.2.1 / §5.2: error and error_description are limited to %x20-21 / %x23-5B /
#: %x5D-7E. Anything else a provider sends is replaced, so nothing hostile reaches a page or log.
_UNSAFE_CHARS = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
_DESCRIPTION_CAP = 300


def clean_provider_text(value: object, cap: int = _DESCRIPTION_CAP) -> str:
    """Return provider-supplied text as one printable, capped line."""
    if not isinstance(value, str):
        return ""
    text = _UNSAFE_CHARS.sub("?", value)
    return text if len(text) <= cap else text[: cap - 1] + "…"


class OAuthConnError(Exception):
    """Root of every oauthconn error."""

    #: a stable machine-readable code (API error bodies, events, logs)
    code = "oauthconn_error"
    #: a sentence for people; subclasses override it
    message = "The OAuth connection failed."
    #: True when the same request cannot succeed later without a person acting (authorizing
    #: again, fixing the configuration); False when retrying with backoff may work. Read it
    #: through :func:`is_permanent`.
    permanent = False

    def __init__(self, message: str | None = None, **details: object) -> None:
        self.details = details
        super().__init__(message or self.message)

    @property
    def transient(self) -> bool:
        """The opposite of :attr:`permanent`, for code written before it existed."""
        return not is_permanent(self)


def is_permanent(error: BaseException) -> bool:
    """The one rule for "retry later or give up": True when retrying cannot help.

    A refresh that fails permanently needs reauthorization, a temporary failure is retried
    with backoff while a valid token is served; a revocation that fails permanently is given
    up (the admin is told), a temporary failure is retried by ``oauthconn_revoke_pending``.
    Anything that is not an oauthconn error counts as temporary.
    """
    return isinstance(error, OAuthConnError) and bool(error.permanent)


# --- configuration ---------------------------------------------------------------------------


class ConfigurationError(OAuthConnError, ImproperlyConfigured):
    """The settings or a connection's configuration cannot work."""

    code = "invalid_configuration"
    message = "The OAuth connection is not configured correctly."
    permanent = True


class EncryptionKeyError(ConfigurationError):
    code = "encryption_keys"
    message = "OAUTHCONN['ENCRYPTION_KEYS'] is missing or holds a malformed key."


class DecryptionFailed(OAuthConnError):
    """A stored secret cannot be decrypted with any configured key."""

    code = "cannot_decrypt"
    message = (
        "A stored secret cannot be decrypted with the configured keys: "
        "re-enter the secret or reauthorize the connection."
    )


class InsecureURL(ConfigurationError):
    code = "insecure_url"
    message = "The URL is not allowed: use https (http only for loopback in development)."


# --- looking up connections and tokens -------------------------------------------------------


class ConnectionNotFound(OAuthConnError, LookupError):
    code = "connection_not_found"
    message = "No OAuth connection with that slug exists."
    permanent = True


class TokenUnavailable(OAuthConnError):
    """The connection cannot produce an access token right now; subclasses say why."""

    code = "token_unavailable"


class NotConnected(TokenUnavailable):
    code = "not_connected"
    message = "The connection has not been authorized yet."
    permanent = True


class ReauthorizationRequired(TokenUnavailable):
    """The grant is gone (invalid_grant, invalid_client, ...): an admin or user must reauthorize."""

    code = "needs_reauthorization"
    message = "The connection needs to be authorized again."
    permanent = True


class TemporarilyUnavailable(TokenUnavailable):
    """The provider failed for a passing reason (network, timeout, 5xx, 429, a malformed
    answer), or the grant is backing off after such a failure; retrying later may succeed.
    The cause, when there is one, is ``__cause__``; ``retry_after`` says when (seconds)."""

    code = "provider_unavailable"
    message = "The provider is temporarily unavailable; try again later."

    def __init__(
        self, message: str | None = None, *, retry_after: float | None = None, **kw: object
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class Busy(TemporarilyUnavailable):
    """Busy here, not at the provider: another thread or worker is renewing this token and
    did not finish within ``LOCK_TIMEOUT`` (or holds SQLite's lease). Nothing was sent; retry
    shortly. A ``TemporarilyUnavailable``, so code that catches that keeps working."""

    code = "busy"
    message = "Another worker is refreshing this connection; try again shortly."


class DisallowedResourceURL(OAuthConnError, ValueError):
    """A request through a connection went to a URL outside its API base URL (R41)."""

    code = "disallowed_url"
    message = "Tokens are only sent to the connection's API base URL."
    permanent = True


# --- outbound HTTP ---------------------------------------------------------------------------


class TransportError(OAuthConnError):
    """The request did not produce a usable HTTP response."""

    code = "transport_error"
    message = "The provider could not be reached."


class ProviderTimeout(TransportError):
    code = "timeout"
    message = "The provider did not answer in time."


class DeadlineExceeded(ProviderTimeout, httpx.TimeoutException):
    """A request outlived its deadline (``REQUEST_DEADLINE`` or a client's ``deadline=``).

    Raised by every client from :mod:`oauthconn.http`, including a connection's
    ``client()``, ``async_client()`` and ``get()``. It is also an ``httpx.TimeoutException``,
    so resource-call code written against httpx keeps catching it.
    """

    message = "The request took longer than its deadline."


class TLSVerificationFailed(TransportError):
    code = "tls_verification_failed"
    message = "TLS verification failed for the provider's certificate."


class BlockedDestination(TransportError):
    """The SSRF guard refused the destination address (R47)."""

    code = "blocked_destination"
    message = "The destination address is not allowed (private, loopback or reserved)."
    # Not permanent: the address is resolved per request (DNS may change back), and a refresh
    # that meets it must keep serving the valid token rather than need reauthorization.


class ResponseTooLarge(TransportError):
    code = "response_too_large"
    message = "The provider's response was larger than allowed."


# --- the authorization callback ---------------------------------------------------------------


class AuthorizationFailed(OAuthConnError):
    """The authorization attempt ended without a grant; the page shows ``message``."""

    code = "authorization_failed"
    message = "The authorization failed. Please start again."
    permanent = True  # a person starts again; nothing retries an authorization by itself


class InvalidCallback(AuthorizationFailed, SuspiciousOperation):
    """A callback that does not belong to a pending attempt of this browser (forged, replayed)."""

    code = "invalid_callback"
    message = "Unknown or expired authorization attempt. Please start again."


class AttemptAlreadyUsed(InvalidCallback):
    """The callback of an attempt that already came back once (a reload, the back button)."""

    code = "attempt_already_used"
    message = (
        "This authorization attempt was already used. If the connection is not connected, "
        "start the authorization again."
    )


class SessionMissing(InvalidCallback):
    code = "session_missing"
    message = (
        "The browser session was not sent with the callback. Check that "
        "SESSION_COOKIE_SAMESITE is not 'Strict' and that cookies are enabled."
    )


class SignedOut(InvalidCallback):
    """The callback came to a browser that is no longer signed in."""

    code = "signed_out"
    message = (
        "Your session ended before the provider sent you back. "
        "Sign in and start the authorization again."
    )


class NotPermitted(AuthorizationFailed, PermissionDenied):
    """The user may not act on this connection (or no longer may: a flow checks again at its
    end). Django answers a raised ``PermissionDenied`` with 403."""

    code = "not_permitted"
    message = "You are not allowed to authorize this connection."


class SwitchRefused(AuthorizationFailed):
    """A confirmation of a switch to another account that cannot be used (defect 7b)."""

    code = "switch_refused"
    message = "This account change cannot be confirmed. Please authorize again."


class SwitchNotFound(SwitchRefused, SuspiciousOperation):
    """No pending switch by that key for this browser and user (forged, or another browser)."""

    code = "switch_not_found"
    message = (
        "There is no account change waiting for you here (it belongs to another browser or "
        "user). Please authorize again."
    )


class SwitchExpired(SwitchRefused):
    code = "switch_expired"
    message = (
        "This account change was not confirmed in time; the new account's access was "
        "discarded and the connection keeps its account. Authorize again to change it."
    )


class SwitchAlreadyUsed(SwitchRefused):
    """A second answer to the same confirmation page (a reload, the back button)."""

    code = "switch_already_used"
    message = "This account change was already answered. Authorize again to change it."


class IssuerMismatch(InvalidCallback):
    """RFC 9207: the ``iss`` in the response is not the provider's issuer."""

    code = "issuer_mismatch"
    message = "The response came from an unexpected authorization server."


class AuthorizationDenied(AuthorizationFailed):
    """The provider redirected back with an ``error`` (RFC 6749 §4.1.2.1)."""

    code = "authorization_denied"
    message = "The provider did not grant access."

    #: fixed sentences for the error codes of RFC 6749 §4.1.2.1
    messages = {
        "access_denied": "Access was denied at the provider.",
        "invalid_scope": "The provider rejected the requested scopes; "
        "check the connection's scopes.",
        "unauthorized_client": "The provider does not allow this client to use this grant type.",
        "unsupported_response_type": "The provider does not support the authorization code flow "
        "for this client.",
        "invalid_request": "The provider rejected the authorization request; check the "
        "connection's configuration.",
        "server_error": "The provider had an error. Try again later.",
        "temporarily_unavailable": "The provider is temporarily unavailable. Try again later.",
    }

    def __init__(self, error: str, description: str = "") -> None:
        self.error = clean_provider_text(error, 64) or "unknown_error"
        self.description = clean_provider_text(description)
        sentence = self.messages.get(self.error, self.message)
        text = f"{sentence} ({self.error}"
        text += f": {self.description})" if self.description else ")"
        super().__init__(text)


# --- token endpoint and provider responses ----------------------------------------------------


class ProviderError(OAuthConnError):
    """The token (or revocation) endpoint answered, but not with what was asked for."""

    code = "provider_error"
    message = "The provider's token endpoint returned an error."
    # Not permanent: an error the provider may stop sending (invalid_request after a
    # misconfiguration at its end, a proxy's 4xx page) must not end a valid grant.

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        error: str = "",
        description: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.error = clean_provider_text(error, 64)
        self.description = clean_provider_text(description)
        self.retry_after = retry_after
        text = message or self.message
        if self.error:
            text += f" ({self.error}" + (f": {self.description})" if self.description else ")")
        elif status is not None:
            text += f" (HTTP {status})"
        super().__init__(text)


class InvalidGrant(ProviderError):
    code = "invalid_grant"
    permanent = True
    message = (
        "The provider rejected the grant: the code or refresh token is invalid, expired or "
        "already used."
    )


class InvalidClient(ProviderError):
    code = "invalid_client"
    permanent = True
    message = (
        "The provider rejected the client credentials: check the client id, secret and "
        "authentication method."
    )


class UnauthorizedClient(ProviderError):
    code = "unauthorized_client"
    message = "The provider does not allow this client to use this grant type."
    permanent = True


class ProviderUnavailable(ProviderError):
    """5xx or 429: the provider is overloaded or down. Retry later."""

    code = "provider_unavailable"
    message = "The provider is temporarily unavailable."


class InvalidProviderResponse(ProviderError):
    """The response could not be understood (HTML, not JSON, missing fields, bad types).

    A 200 that carried a well-formed new ``refresh_token`` but is refused for another
    member keeps that refresh token in :attr:`salvaged_refresh_token`: a provider that
    rotates has already invalidated the old one, so the flow must store it. It never
    appears in ``str()``, ``repr()`` or ``args``.
    """

    code = "invalid_response"
    message = "The provider sent a response that is not a valid OAuth token response."
    _salvaged: _Withheld | None = None

    @property
    def salvaged_refresh_token(self) -> str | None:
        return self._salvaged.value if self._salvaged is not None else None

    def salvage(self, refresh_token: str) -> None:
        self._salvaged = _Withheld(refresh_token)


class _Withheld:
    """A secret an error carries for the code that handles it; it prints as ``***``."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__


# --- discovery and ID tokens --------------------------------------------------------------------


class DiscoveryFailed(ConfigurationError):
    """The issuer's metadata could not be fetched or failed validation (RFC 8414 §3.3)."""

    code = "discovery_failed"
    message = "The provider's metadata could not be used."


class InvalidIDToken(AuthorizationFailed):
    """An ID token failed validation (OpenID Connect Core §3.1.3.7); nothing is stored."""

    code = "invalid_id_token"
    message = "The provider's ID token failed validation."
    # During a refresh the response is refused and the grant kept: the provider may send a
    # valid one next time (a key rotation, a clock put right). At authorization the person
    # starts again anyway.
    permanent = False


# --- ID token checks: one class per failure, so each has its own message -----------------------


class MalformedIDToken(InvalidIDToken):
    code = "id_token_malformed"
    message = "The provider's ID token is not a well-formed signed JWT."


class IDTokenAlgorithmNotAllowed(InvalidIDToken):
    code = "id_token_algorithm"
    message = "The provider's ID token is signed with an algorithm that is not allowed."


class IDTokenSignatureInvalid(InvalidIDToken):
    code = "id_token_signature"
    message = "The provider's ID token signature does not verify."


class IDTokenKeyNotFound(InvalidIDToken):
    code = "id_token_unknown_key"
    message = "No key in the provider's JWKS matches the ID token (unknown or ambiguous 'kid')."


class JWKSUnavailable(InvalidIDToken):
    code = "jwks_unavailable"
    message = "The provider's signing keys (JWKS) could not be fetched."


class IDTokenIssuerMismatch(InvalidIDToken):
    code = "id_token_issuer"
    message = "The ID token was issued by another issuer ('iss' does not match the provider)."


class IDTokenAudienceMismatch(InvalidIDToken):
    code = "id_token_audience"
    message = "The ID token is meant for another client ('aud' or 'azp' does not match)."


class IDTokenExpired(InvalidIDToken):
    code = "id_token_expired"
    message = "The ID token has expired ('exp' is in the past)."


class IDTokenIssuedInFuture(InvalidIDToken):
    code = "id_token_iat"
    message = "The ID token's issue time ('iat') is in the future or too old; check the clocks."


class IDTokenNonceMismatch(InvalidIDToken):
    code = "id_token_nonce"
    message = "The ID token's 'nonce' does not match this authorization attempt."


class IdentityChanged(InvalidIDToken):
    """A refresh answered with a validly signed ID token for another account or another
    client (R39, OIDC Core §12.2). Retrying cannot bring the original account back, so the
    flows treat it as terminal: the grant needs reauthorization."""

    code = "id_token_identity_changed"
    permanent = True
    message = (
        "The provider's refreshed ID token names another account than the one that "
        "authorized the connection; reauthorize it."
    )


class UserinfoFailed(OAuthConnError):
    """The userinfo endpoint (OIDC Core §5.3) did not give usable claims; they are not used."""

    code = "userinfo_failed"
    message = "The provider's userinfo endpoint did not return usable claims."

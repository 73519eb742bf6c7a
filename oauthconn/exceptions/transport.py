"""Outbound HTTP and what providers answer at their token and revocation endpoints."""

from __future__ import annotations

import httpx

from oauthconn.exceptions.base import OAuthConnError, clean_provider_text

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


class RegistrationRefused(ProviderError):
    """The registration endpoint refused to register the client (RFC 7591 §3.2.2), or its
    answer was not a usable registration (§3.2.1). Nothing was stored."""

    code = "registration_refused"
    message = "The provider refused to register the client."
    permanent = True


class ProviderUnavailable(ProviderError):
    """5xx or 429: the provider is overloaded or down. Retry later."""

    code = "provider_unavailable"
    message = "The provider is temporarily unavailable."


class DPoPNonceRejected(ProviderError):
    """The server asked for a DPoP nonce again after the retry with the one it gave
    (RFC 9449 §8, §9; SECURITY R53). Temporary: its nonces may settle."""

    code = "use_dpop_nonce"
    message = "The provider refused the DPoP nonce it had just sent."


class DPoPProofRejected(ProviderError):
    """The server refused the DPoP proof (RFC 9449 §5 ``invalid_dpop_proof``)."""

    code = "invalid_dpop_proof"
    message = "The provider refused the DPoP proof."


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

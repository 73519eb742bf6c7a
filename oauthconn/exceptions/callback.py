"""The authorization callback: forged, replayed, refused or denied answers."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, SuspiciousOperation

from oauthconn.exceptions.base import OAuthConnError, clean_provider_text

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

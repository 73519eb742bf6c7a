"""The root of the tree, the rule for temporary vs permanent, configuration and lookup errors."""

from __future__ import annotations

import re

from django.core.exceptions import ImproperlyConfigured

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


class WorkerDied(OAuthConnError):
    """A worker process of the proactive refresh (``--processes``) ended before finishing its
    share, e.g. killed. Nothing is lost: the tokens it had claimed are free again when their
    lease ends, and the next run refreshes them. The message names the processes."""

    code = "worker_died"
    message = (
        "A worker process of the proactive refresh ended early; the tokens it had claimed "
        "are free again when their lease ends."
    )


class DisallowedResourceURL(OAuthConnError, ValueError):
    """A request through a connection went to a URL outside its API base URL (R41)."""

    code = "disallowed_url"
    message = "Tokens are only sent to the connection's API base URL."
    permanent = True


class GrantValueRefused(DisallowedResourceURL):
    """A per-grant value of the API base URL (``{ask:...}`` typed when connecting, or
    ``{token:...}`` from the token response) is malformed or makes a URL the policy refuses
    (R62). ``details["field"]`` names the field when one is at fault."""

    code = "grant_value_refused"
    message = "A value of the connection's API base URL was refused."

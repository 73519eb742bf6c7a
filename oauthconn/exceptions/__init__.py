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

from oauthconn.exceptions.base import (
    Busy,
    ConfigurationError,
    ConnectionNotFound,
    DecryptionFailed,
    DisallowedResourceURL,
    EncryptionKeyError,
    InsecureURL,
    NotConnected,
    OAuthConnError,
    ReauthorizationRequired,
    TemporarilyUnavailable,
    TokenUnavailable,
    clean_provider_text,
    is_permanent,
)
from oauthconn.exceptions.callback import (
    AttemptAlreadyUsed,
    AuthorizationDenied,
    AuthorizationFailed,
    InvalidCallback,
    IssuerMismatch,
    NotPermitted,
    SessionMissing,
    SignedOut,
    SwitchAlreadyUsed,
    SwitchExpired,
    SwitchNotFound,
    SwitchRefused,
)
from oauthconn.exceptions.calls import RateLimited, RetriesExhausted
from oauthconn.exceptions.identity import (
    DiscoveryFailed,
    IdentityChanged,
    IDTokenAlgorithmNotAllowed,
    IDTokenAudienceMismatch,
    IDTokenExpired,
    IDTokenIssuedInFuture,
    IDTokenIssuerMismatch,
    IDTokenKeyNotFound,
    IDTokenNonceMismatch,
    IDTokenSignatureInvalid,
    InvalidIDToken,
    JWKSUnavailable,
    MalformedIDToken,
    UserinfoFailed,
)
from oauthconn.exceptions.scopes import ScopeNotAllowed, ScopesRequired
from oauthconn.exceptions.transport import (
    BlockedDestination,
    DeadlineExceeded,
    InvalidClient,
    InvalidGrant,
    InvalidProviderResponse,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    ResponseTooLarge,
    TLSVerificationFailed,
    TransportError,
    UnauthorizedClient,
)

__all__ = [
    "AttemptAlreadyUsed",
    "AuthorizationDenied",
    "AuthorizationFailed",
    "BlockedDestination",
    "Busy",
    "ConfigurationError",
    "ConnectionNotFound",
    "DeadlineExceeded",
    "DecryptionFailed",
    "DisallowedResourceURL",
    "DiscoveryFailed",
    "EncryptionKeyError",
    "IDTokenAlgorithmNotAllowed",
    "IDTokenAudienceMismatch",
    "IDTokenExpired",
    "IDTokenIssuedInFuture",
    "IDTokenIssuerMismatch",
    "IDTokenKeyNotFound",
    "IDTokenNonceMismatch",
    "IDTokenSignatureInvalid",
    "IdentityChanged",
    "InsecureURL",
    "InvalidCallback",
    "InvalidClient",
    "InvalidGrant",
    "InvalidIDToken",
    "InvalidProviderResponse",
    "IssuerMismatch",
    "JWKSUnavailable",
    "MalformedIDToken",
    "NotConnected",
    "NotPermitted",
    "OAuthConnError",
    "ProviderError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimited",
    "ReauthorizationRequired",
    "ResponseTooLarge",
    "ScopeNotAllowed",
    "ScopesRequired",
    "RetriesExhausted",
    "SessionMissing",
    "SignedOut",
    "SwitchAlreadyUsed",
    "SwitchExpired",
    "SwitchNotFound",
    "SwitchRefused",
    "TLSVerificationFailed",
    "TemporarilyUnavailable",
    "TokenUnavailable",
    "TransportError",
    "UnauthorizedClient",
    "UserinfoFailed",
    "clean_provider_text",
    "is_permanent",
]

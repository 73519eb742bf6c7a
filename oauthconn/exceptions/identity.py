"""Discovery, ID tokens (one class per failed check) and userinfo."""

from __future__ import annotations

from oauthconn.exceptions.base import ConfigurationError, OAuthConnError
from oauthconn.exceptions.callback import AuthorizationFailed

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

"""Client authentication at the token and revocation endpoints (RFC 6749 §2.3; SECURITY R23).

Exactly one method per request (RFC 6749 §2.3, §5.2 ``invalid_request``). Methods live in
:data:`AUTH_METHODS`, a plain registry: ``private_key_jwt`` (RFC 7523 §2.2, signing in
:mod:`oauthconn.oauth.assertion`) is one more function, which is why each function also
receives the endpoint URL (the assertion's audience when no issuer is known).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote_plus

from oauthconn.exceptions import ConfigurationError
from oauthconn.oauth.assertion import add_client_assertion


@dataclass(frozen=True)
class ClientCredentials:
    """Who the client is and how it proves it.

    ``method`` is a key of :data:`AUTH_METHODS`: ``client_secret_basic``,
    ``client_secret_post``, ``none`` (a public client, RFC 6749 §2.1) or ``private_key_jwt``.
    """

    client_id: str
    client_secret: str | None
    method: str
    #: private_key_jwt (RFC 7523): the PEM private key, its kid, and the assertion's audience
    #: (the issuer when known, else the token endpoint; see oauthconn.oauth.assertion)
    private_key: str | None = None
    private_key_id: str = ""
    assertion_audience: str = ""

    def __repr__(self) -> str:
        secret = "<set>" if self.client_secret else "<unset>"
        return (
            f"ClientCredentials(client_id={self.client_id!r}, client_secret={secret}, "
            f"method={self.method!r})"
        )


#: (credentials, form body, headers, endpoint) -> None; adds the authentication in place.
AuthMethod = Callable[[ClientCredentials, dict[str, str], dict[str, str], str], None]


def _form_encode(value: str) -> str:
    # RFC 6749 §2.3.1 and Appendix B: id and secret are form-urlencoded *before* Base64.
    # Skipping this breaks secrets containing ":" or "%" at spec-following servers.
    return quote_plus(value, safe="", encoding="utf-8")


def _required_secret(creds: ClientCredentials) -> str:
    if not creds.client_secret:
        raise ConfigurationError(
            f"Client authentication {creds.method!r} needs a client secret; none is set."
        )
    return creds.client_secret


def _client_secret_basic(
    creds: ClientCredentials, data: dict[str, str], headers: dict[str, str], endpoint: str
) -> None:
    """HTTP Basic with the form-encoded id and secret (RFC 6749 §2.3.1)."""
    pair = f"{_form_encode(creds.client_id)}:{_form_encode(_required_secret(creds))}"
    headers["Authorization"] = "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")


def _client_secret_post(
    creds: ClientCredentials, data: dict[str, str], headers: dict[str, str], endpoint: str
) -> None:
    """Id and secret in the request body (RFC 6749 §2.3.1, OAuth 2.1 §2.4.1)."""
    data["client_id"] = creds.client_id
    data["client_secret"] = _required_secret(creds)


def _none(
    creds: ClientCredentials, data: dict[str, str], headers: dict[str, str], endpoint: str
) -> None:
    """A public client identifies itself without authenticating (RFC 6749 §3.2.1)."""
    data["client_id"] = creds.client_id


def _private_key_jwt(
    creds: ClientCredentials, data: dict[str, str], headers: dict[str, str], endpoint: str
) -> None:
    """A signed JWT assertion (RFC 7523 §2.2, OIDC Core §9)."""
    add_client_assertion(
        data,
        client_id=creds.client_id,
        audience=creds.assertion_audience or endpoint,
        private_key_pem=creds.private_key,
        key_id=creds.private_key_id,
    )


#: The supported methods, by their RFC 8414 / OIDC Registration names.
AUTH_METHODS: dict[str, AuthMethod] = {
    "client_secret_basic": _client_secret_basic,
    "client_secret_post": _client_secret_post,
    "none": _none,
    "private_key_jwt": _private_key_jwt,
}

# Body and header names an authentication method owns; a request that already carries one
# would authenticate twice.
_AUTH_FIELDS = ("client_secret", "client_assertion", "client_assertion_type")


def apply_client_auth(
    creds: ClientCredentials,
    data: dict[str, str],
    headers: dict[str, str],
    *,
    endpoint: str = "",
) -> None:
    """Add ``creds``' authentication to a token request's body or headers, in place.

    Raises :class:`ConfigurationError` for an unknown method, a missing secret, or a
    request that already carries authentication (exactly one method per request).
    """
    method = AUTH_METHODS.get(creds.method)
    if method is None:
        raise ConfigurationError(
            f"Unknown client authentication method {creds.method!r}; "
            f"use one of {sorted(AUTH_METHODS)}."
        )
    if any(name in data for name in _AUTH_FIELDS) or any(
        name.lower() == "authorization" for name in headers
    ):
        raise ConfigurationError("The request already carries client authentication.")
    method(creds, data, headers, endpoint)

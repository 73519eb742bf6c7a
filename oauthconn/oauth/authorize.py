"""The authorization request (RFC 6749 §4.1.1, §3.1; RFC 7636 §4.3; SECURITY R10, R13).

The URL is built only from the stored connection and server-generated values. Admin-defined
extra parameters (``access_type=offline``, ``audience``, ``resource``...) may add to it, but
never set a protocol parameter nor repeat one: RFC 6749 §3.1 forbids sending a parameter
twice, and letting configuration override ``redirect_uri`` or ``state`` would undo R12/R9.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from oauthconn.exceptions import ConfigurationError

#: Parameters oauthconn sets itself, in authorization and token requests alike. Extra
#: parameters may not use these names (compared case-insensitively, because some servers
#: match names loosely even though RFC 6749 §3.1 makes them case-sensitive).
PROTOCOL_PARAMETERS: frozenset[str] = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
        "nonce",
        "request",
        "request_uri",
        "response_mode",
        "grant_type",
        "code",
        "code_verifier",
        "client_secret",
        "client_assertion",
        "client_assertion_type",
        "refresh_token",
    }
)


def check_extra_parameters(params: Mapping[str, str], *, endpoint: str | None = None) -> None:
    """Raise :class:`ConfigurationError` naming the first unusable extra parameter.

    Refused: a protocol parameter (:data:`PROTOCOL_PARAMETERS`), an empty name, a non-string
    name or value, a control character in a name or a NUL in a value (PostgreSQL cannot
    store it in JSON, and no provider means it), and, when ``endpoint`` is given, a name its
    query component already has.
    Forms call this to validate admin input; :func:`build_authorization_url` calls it too.
    """
    existing = _query_names(endpoint) if endpoint else set()
    for name, value in params.items():
        if not isinstance(name, str) or not name:
            raise ConfigurationError("Extra parameter names must be non-empty strings.")
        if not isinstance(value, str):
            raise ConfigurationError(f"The extra parameter {name!r} must have a string value.")
        if not name.isprintable():
            raise ConfigurationError(f"The extra parameter name {name!r} has a control character.")
        if "\x00" in value:
            raise ConfigurationError(f"The extra parameter {name!r} has a NUL character.")
        if name.lower() in PROTOCOL_PARAMETERS:
            raise ConfigurationError(
                f"The extra parameter {name!r} is a protocol parameter that oauthconn sets "
                "itself; remove it."
            )
        if name in existing:
            raise ConfigurationError(
                f"The extra parameter {name!r} is already in the endpoint's query; "
                "a parameter must not be sent twice."
            )


def _query_names(url: str) -> set[str]:
    return {name for name, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}


def build_authorization_url(endpoint: str, **params: Any) -> str:
    """Return the URL that starts an authorization code flow (RFC 6749 §4.1.1).

    ``params`` are :func:`authorization_parameters`' (client_id, redirect_uri, scope, state,
    code_challenge, nonce, extra_params, resource). The endpoint's own query component is
    kept as it is (§3.1) and ours is appended. ``scope`` is left out when empty. With a
    ``code_challenge``, ``code_challenge_method`` is always ``S256`` (RFC 7636 §4.3; never
    ``plain``, R10).
    """
    return append_query(endpoint, authorization_parameters(endpoint, **params))


def authorization_parameters(
    endpoint: str,
    *,
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    code_challenge: str | None = None,
    nonce: str | None = None,
    extra_params: Mapping[str, str] | None = None,
    resource: str = "",
) -> dict[str, str]:
    """Every parameter of an authorization request, checked, in the order they are sent.

    The same set goes in the URL (:func:`build_authorization_url`) or in a pushed request's
    body (RFC 9126 §2.1, :mod:`oauthconn.oauth.par`). ``resource`` is an RFC 8707 resource
    indicator; it is a protocol parameter here, so an extra parameter may not also set it.
    """
    check_endpoint(endpoint)
    extra = dict(extra_params or {})
    check_extra_parameters(extra, endpoint=endpoint)
    if resource and "resource" in {name.lower() for name in extra}:
        raise ConfigurationError(
            "The extra parameter 'resource' would repeat the connection's resource indicator."
        )
    params = _protocol_parameters(client_id, redirect_uri, scope, state, code_challenge, nonce)
    if resource:
        params["resource"] = resource
    return {**params, **extra}


def check_endpoint(endpoint: str) -> None:
    """An authorization endpoint has no fragment and sets no protocol parameter itself."""
    if urlsplit(endpoint).fragment or "#" in endpoint:
        raise ConfigurationError("The authorization endpoint must not contain a fragment.")
    clash = PROTOCOL_PARAMETERS.intersection(n.lower() for n in _query_names(endpoint))
    if clash:
        raise ConfigurationError(
            f"The authorization endpoint's query already sets {sorted(clash)[0]!r}; "
            "remove it from the endpoint URL."
        )


def append_query(endpoint: str, params: Mapping[str, str]) -> str:
    """``endpoint`` with ``params`` appended to its own query component (RFC 6749 §3.1)."""
    parts = urlsplit(endpoint)
    # %20 rather than "+" for spaces: both are valid form encoding, but %20 also survives
    # servers that percent-decode the query without treating "+" as a space.
    query = urlencode(params, quote_via=quote)
    joined = f"{parts.query}&{query}" if parts.query else query
    return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, ""))


def _protocol_parameters(
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    code_challenge: str | None,
    nonce: str | None,
) -> dict[str, str]:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri}
    if scope:
        params["scope"] = scope
    params["state"] = state
    if code_challenge:
        params["code_challenge"] = code_challenge
        params["code_challenge_method"] = "S256"
    if nonce:
        params["nonce"] = nonce
    return params

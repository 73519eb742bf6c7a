"""Authorization server metadata discovery (RFC 8414, OpenID Connect Discovery 1.0; SECURITY R3).

:func:`discover` fetches an issuer's metadata documents and validates them before anything
uses them: each document's ``issuer`` must equal the given issuer byte for byte (RFC 8414
§3.3, OIDC Discovery §4.3; a trailing slash counts), every endpoint must pass
:func:`oauthconn.http.check_url` (https, or http on loopback in development, R1), and the
endpoints the code flow needs must be there (M5). Any problem raises
:class:`~oauthconn.exceptions.DiscoveryFailed` whose message names it.

A server may publish two documents, and they need not list the same members:
django-oauth-toolkit, for one, names its revocation endpoint only in the RFC 8414 one. Both
are fetched, and used together:

1. the OpenID document, ``{issuer}/.well-known/openid-configuration`` (OIDC Discovery §4.1:
   appended, also after a path);
2. the RFC 8414 document, ``{origin}/.well-known/oauth-authorization-server{path}`` (§3.1: the
   well-known part is *inserted* between the host and the issuer's path), or, when that is a
   404 and the issuer has a path, ``{issuer}/.well-known/oauth-authorization-server`` (the
   appended form that servers mounted under a prefix, DOT among them, answer).

How they combine (:func:`merge_documents`):

- a 404 means "no such document"; at least one of the two must exist;
- any other failure of either document (not JSON, another issuer, an endpoint that is not
  allowed, too large, a redirect, HTTP 5xx) fails discovery as a whole, even when the other
  document is fine: using half of a server's metadata silently loses what the broken half
  says (its revocation endpoint, say), and a document naming another issuer must not be used
  at all (RFC 8414 §3.3);
- an endpoint named by both with different values fails discovery: where tokens and secrets
  are sent is not something to pick a winner for (R3, R5); the admin enters it by hand;
- any other member named by both takes the OpenID document's value (it was the only document
  read before, so providers discovered earlier keep their values); the RFC 8414 document
  fills what the OpenID one leaves out.

Redirects are not followed (catalogue M3 allows "none"): a metadata URL that redirects is
reported, and the admin enters the issuer it redirects to.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from oauthconn.exceptions import DiscoveryFailed, InsecureURL, OAuthConnError
from oauthconn.http import check_url, send

OIDC_WELL_KNOWN = "/.well-known/openid-configuration"
RFC8414_WELL_KNOWN = "/.well-known/oauth-authorization-server"

#: Endpoint members validated as URLs; the first two are checked for presence separately.
_ENDPOINTS = (
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "userinfo_endpoint",
    "jwks_uri",
    "introspection_endpoint",
    "pushed_authorization_request_endpoint",
    "registration_endpoint",
)

#: RFC 8414 §2 defaults for members a server may leave out.
_DEFAULT_GRANT_TYPES = ("authorization_code", "implicit")
_DEFAULT_AUTH_METHODS = ("client_secret_basic",)

#: Grant types that go through the authorization endpoint.
_BROWSER_GRANTS = {"authorization_code", "implicit"}


@dataclass(frozen=True)
class ServerMetadata:
    """A validated metadata document. Names follow ``Provider``'s fields; ``raw`` is the document.

    Endpoints absent from the document are ``""``; list members absent from it are their
    RFC 8414 §2 defaults (grant types, auth methods) or empty ("not advertised").
    """

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str = ""
    userinfo_endpoint: str = ""
    jwks_uri: str = ""
    introspection_endpoint: str = ""
    #: RFC 9126 §5: where authorization requests are pushed, and whether only pushed ones count
    pushed_authorization_request_endpoint: str = ""
    requires_par: bool = False
    #: RFC 7591 §3: where a client may register itself
    registration_endpoint: str = ""
    scopes_supported: tuple[str, ...] = ()
    supported_grant_types: tuple[str, ...] = _DEFAULT_GRANT_TYPES
    code_challenge_methods: tuple[str, ...] = ()
    token_endpoint_auth_methods: tuple[str, ...] = _DEFAULT_AUTH_METHODS
    id_token_signing_algs: tuple[str, ...] = ()
    sends_issuer: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def jwks_on_other_host(self) -> bool:
        """True when ``jwks_uri`` is on another host than the issuer (M6: show it to the admin)."""
        return bool(self.jwks_uri) and httpx.URL(self.jwks_uri).host != httpx.URL(self.issuer).host


def metadata_urls(issuer: str) -> list[str]:
    """Every URL that may be fetched for ``issuer``, in order: the OpenID one, then RFC 8414's."""
    return [openid_metadata_url(issuer), *rfc8414_metadata_urls(issuer)]


def openid_metadata_url(issuer: str) -> str:
    """Where the OpenID document is: appended to the issuer (OIDC Discovery §4.1)."""
    return issuer.rstrip("/") + OIDC_WELL_KNOWN


def rfc8414_metadata_urls(issuer: str) -> list[str]:
    """Where the RFC 8414 document may be: inserted before the path (§3.1), then appended."""
    url = httpx.URL(issuer)
    origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
    inserted = origin + RFC8414_WELL_KNOWN + url.path.rstrip("/")
    appended = issuer.rstrip("/") + RFC8414_WELL_KNOWN
    return [inserted] if inserted == appended else [inserted, appended]


def discover(http: httpx.Client, issuer: str) -> ServerMetadata:
    """Fetch, validate and combine ``issuer``'s metadata (RFC 8414 §3, OIDC Discovery §4).

    Raises :class:`DiscoveryFailed` when the issuer is not an acceptable URL, neither document
    is found, the server cannot be reached, a document is not a JSON object, names another
    issuer or an endpoint that is not allowed, the two name different endpoints, or an
    endpoint the flows need is missing from both.
    """
    check_issuer_url(issuer)
    openid = _fetch_first(http, [openid_metadata_url(issuer)], issuer)
    rfc8414 = _fetch_first(http, rfc8414_metadata_urls(issuer), issuer)
    if openid is None and rfc8414 is None:
        raise DiscoveryFailed(
            f"No metadata document was found for {issuer} "
            f"(HTTP 404 at {' and '.join(metadata_urls(issuer))})."
        )
    return parse_metadata(merge_documents(openid or {}, rfc8414 or {}), issuer)


def merge_documents(openid: dict[str, Any], rfc8414: dict[str, Any]) -> dict[str, Any]:
    """One document from both: endpoints must agree, otherwise the OpenID document wins.

    Members either leaves out (absent, null or ``""``) are filled from the other. Raises
    :class:`DiscoveryFailed` naming every endpoint the two documents disagree on.
    """
    conflicts = [
        f"{name} is {_show(openid[name])} in the OpenID document but {_show(rfc8414[name])} "
        "in the RFC 8414 one"
        for name in _ENDPOINTS
        if _given(openid.get(name)) and _given(rfc8414.get(name)) and openid[name] != rfc8414[name]
    ]
    if conflicts:
        raise DiscoveryFailed(
            f"The provider's two metadata documents disagree: {'; '.join(conflicts)}. Fix the "
            "provider's metadata, or enter the endpoints by hand."
        )
    merged = {name: value for name, value in rfc8414.items() if _given(value)}
    merged.update({name: value for name, value in openid.items() if _given(value)})
    return merged


def _given(value: object) -> bool:
    """False for a member a document leaves out (absent, null or empty string)."""
    return value is not None and value != ""


def check_issuer_url(issuer: str) -> None:
    """An issuer is an https URL without query or fragment (RFC 8414 §2, SECURITY R1)."""
    try:
        check_url(issuer, field="The issuer")
    except InsecureURL as err:
        raise DiscoveryFailed(str(err)) from err
    if httpx.URL(issuer).query or "?" in issuer:
        raise DiscoveryFailed("The issuer must not contain a query (?...).")


def _fetch_first(http: httpx.Client, urls: list[str], issuer: str) -> dict[str, Any] | None:
    """The first of ``urls`` that is not a 404, validated on its own; None when all are 404."""
    for url in urls:
        document = fetch_document(http, url)
        if document is not None:
            try:
                parse_metadata(document, issuer, complete=False)
            except DiscoveryFailed as err:
                raise DiscoveryFailed(f"{err} (in {url})") from err
            return document
    return None


def fetch_document(
    http: httpx.Client, url: str, *, what: str = "metadata", source: str = "issuer"
) -> dict[str, Any] | None:
    """GET one metadata URL: the JSON object, or None on 404; anything else fails.

    Shared by server metadata (RFC 8414, OpenID Discovery) and protected resource metadata
    (RFC 9728, ``what="resource metadata"``); ``source`` names what the admin typed, which a
    redirect tells them to correct.
    """
    host = httpx.URL(url).host
    try:
        response = send(http, "GET", url, headers={"Accept": "application/json"})
    except OAuthConnError as err:
        raise DiscoveryFailed(f"Cannot fetch the {what} from {host}: {err}") from err
    if response.status_code == 404:
        return None
    if 300 <= response.status_code < 400:
        raise DiscoveryFailed(
            f"The {what} URL {url} redirects (HTTP {response.status_code}); redirects are "
            f"not followed: enter the {source} it redirects to."
        )
    if response.status_code != 200:
        raise DiscoveryFailed(f"The {what} URL {url} answered HTTP {response.status_code}.")
    try:
        document = json.loads(response.content)
    except (UnicodeDecodeError, ValueError) as err:
        raise DiscoveryFailed(f"The {what} at {url} is not JSON.") from err
    if not isinstance(document, dict):
        raise DiscoveryFailed(f"The {what} at {url} is JSON but not an object.")
    return document


def parse_metadata(
    document: dict[str, Any], issuer: str, *, complete: bool = True
) -> ServerMetadata:
    """Validate a metadata document for ``issuer`` (RFC 8414 §3.3) and return it typed.

    ``complete=False`` checks the issuer and every member that is there, but not that the
    endpoints the flows need are: for one of two documents that are used together.
    """
    found = document.get("issuer")
    if found != issuer:
        hint = (
            " (they differ only by a trailing slash)"
            if isinstance(found, str) and found.rstrip("/") == issuer.rstrip("/")
            else ""
        )
        raise DiscoveryFailed(
            f"The metadata's issuer {_show(found)} is not the expected {issuer!r}{hint}; "
            "RFC 8414 §3.3 forbids using it."
        )
    endpoints = {name: _url(document, name) for name in _ENDPOINTS}
    grant_types = _strings(document, "grant_types_supported") or _DEFAULT_GRANT_TYPES
    if complete:
        _check_required(endpoints, grant_types)
    return ServerMetadata(
        issuer=issuer,
        **endpoints,
        scopes_supported=_strings(document, "scopes_supported"),
        supported_grant_types=grant_types,
        code_challenge_methods=_strings(document, "code_challenge_methods_supported"),
        token_endpoint_auth_methods=(
            _strings(document, "token_endpoint_auth_methods_supported") or _DEFAULT_AUTH_METHODS
        ),
        id_token_signing_algs=_strings(document, "id_token_signing_alg_values_supported"),
        sends_issuer=document.get("authorization_response_iss_parameter_supported") is True,
        requires_par=document.get("require_pushed_authorization_requests") is True,
        raw=document,
    )


def _check_required(endpoints: dict[str, str], grant_types: tuple[str, ...]) -> None:
    if not endpoints["token_endpoint"]:
        raise DiscoveryFailed("The metadata has no token_endpoint.")
    if not endpoints["authorization_endpoint"] and _BROWSER_GRANTS & set(grant_types):
        raise DiscoveryFailed("The metadata has no authorization_endpoint.")


def _url(document: dict[str, Any], name: str) -> str:
    value = document.get(name)
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise DiscoveryFailed(f"The metadata's {name} is not a string.")
    try:
        check_url(value, field=f"The metadata's {name}")
    except InsecureURL as err:
        raise DiscoveryFailed(f"{err} ({_show(value)})") from err
    return value


def _strings(document: dict[str, Any], name: str) -> tuple[str, ...]:
    value = document.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DiscoveryFailed(f"The metadata's {name} is not a list of strings.")
    return tuple(value)


def _show(value: object) -> str:
    """A provider value for a message: repr'd and capped, so a hostile one stays one line."""
    text = repr(value)
    return text if len(text) <= 120 else text[:119] + "…"

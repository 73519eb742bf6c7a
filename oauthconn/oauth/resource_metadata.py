"""OAuth 2.0 Protected Resource Metadata (RFC 9728; SECURITY R56).

An API (an MCP server, for one) says which authorization servers issue tokens for it: its
metadata document at ``/.well-known/oauth-protected-resource`` (inserted between the host and
the resource's path, §3.1), also named by the ``resource_metadata`` parameter of the
``WWW-Authenticate`` challenge it answers a request without a token with (§5.1).

:func:`fetch_resource_metadata` asks the well-known URL first and, when that is a 404, the
resource itself for its challenge. Every URL goes through :func:`oauthconn.http.send` (the SSRF
guard: private, loopback without the development switch, and metadata addresses refused) and
:func:`oauthconn.http.check_url` first. The document's ``resource`` must equal the URL asked
for, byte for byte (§3.3): metadata that speaks for another resource is refused, as an
authorization server's metadata naming another issuer is (RFC 8414 §3.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

from oauthconn.exceptions import DiscoveryFailed, InsecureURL, OAuthConnError
from oauthconn.http import check_url, send
from oauthconn.oauth.discovery import fetch_document

WELL_KNOWN = "/.well-known/oauth-protected-resource"
# auth-param of RFC 9110 §11.2: name=token or name="quoted string"
_PARAM = re.compile(r'([A-Za-z0-9_\-.]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class ResourceMetadata:
    """A validated protected resource metadata document (RFC 9728 §2)."""

    resource: str
    authorization_servers: tuple[str, ...]
    scopes_supported: tuple[str, ...] = ()
    resource_name: str = ""


def resource_metadata_url(resource: str) -> str:
    """Where ``resource``'s metadata is (§3.1): the well-known path before the resource's path.

    A trailing slash of the path is kept off (``/api/`` → ``…/oauth-protected-resource/api``)
    as §3.1's example does; the query is kept.
    """
    url = httpx.URL(resource)
    origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
    query = f"?{url.query.decode('ascii')}" if url.query else ""
    return origin + WELL_KNOWN + url.path.rstrip("/") + query


def challenge_metadata_url(header: str) -> str | None:
    """The ``resource_metadata`` parameter of a Bearer ``WWW-Authenticate`` challenge (§5.1)."""
    scheme, _, params = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    for name, quoted, token in _PARAM.findall(params):
        if name.lower() == "resource_metadata":
            return re.sub(r"\\(.)", r"\1", quoted) if quoted else token
    return None


def fetch_resource_metadata(http: httpx.Client, resource: str) -> ResourceMetadata:
    """Fetch and validate ``resource``'s metadata (§3); :class:`DiscoveryFailed` otherwise."""
    _check(resource, "The resource URL")
    document = _get_json(http, resource_metadata_url(resource))
    if document is None:
        challenged = _challenged_url(http, resource)
        document = _get_json(http, challenged)
        if document is None:
            raise DiscoveryFailed(f"The resource metadata URL {challenged} answered HTTP 404.")
    return parse_resource_metadata(document, resource)


def _challenged_url(http: httpx.Client, resource: str) -> str:
    """The metadata URL the resource's 401 challenge names (§5.1), checked like any URL."""
    try:
        response = send(http, "GET", resource, headers={"Accept": "application/json"})
    except OAuthConnError as err:
        raise DiscoveryFailed(f"Cannot reach the resource {resource}: {err}") from err
    url = challenge_metadata_url(response.headers.get("www-authenticate", ""))
    if response.status_code != 401 or not url:
        raise DiscoveryFailed(
            f"{resource} publishes no protected resource metadata (RFC 9728): neither "
            f"{resource_metadata_url(resource)} nor a 401 challenge naming resource_metadata."
        )
    _check(url, "The resource_metadata URL of the challenge")
    return url


def _get_json(http: httpx.Client, url: str) -> dict[str, Any] | None:
    return fetch_document(http, url, what="resource metadata", source="API URL")


def parse_resource_metadata(document: dict[str, Any], resource: str) -> ResourceMetadata:
    """Validate a metadata document for ``resource`` (§2, §3.3)."""
    if document.get("resource") != resource:
        raise DiscoveryFailed(
            f"The resource metadata speaks for {_show(document.get('resource'))}, not for "
            f"{resource!r}; RFC 9728 §3.3 forbids using it."
        )
    servers = _strings(document, "authorization_servers")
    if not servers:
        raise DiscoveryFailed("The resource metadata names no authorization server.")
    for server in servers:
        _check(server, "An authorization server of the resource metadata")
    name = document.get("resource_name")
    return ResourceMetadata(
        resource=resource,
        authorization_servers=servers,
        scopes_supported=_strings(document, "scopes_supported"),
        resource_name=name if isinstance(name, str) else "",
    )


def _check(url: str, field: str) -> None:
    try:
        check_url(url, field=field)
    except InsecureURL as err:
        raise DiscoveryFailed(f"{err} ({_show(url)})") from err


def _strings(document: dict[str, Any], name: str) -> tuple[str, ...]:
    value = document.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DiscoveryFailed(f"The resource metadata's {name} is not a list of strings.")
    return tuple(value)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:119] + "…"

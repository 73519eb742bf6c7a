"""The admin's "Test" button: one authenticated GET, reported as status and a short excerpt.

The request goes to the connection's ``test_path`` under its API base URL when one is set
(through :class:`oauthconn.flows.resource.Grant`, the same authenticated client site code
gets, so the token stays on that origin and a 401 gets one refresh and retry), else to the
provider's userinfo endpoint (OpenID Connect Core §5.3), which the provider that issued the
token serves itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin

from oauthconn import http
from oauthconn.base_url import grant_fields
from oauthconn.exceptions import ConfigurationError
from oauthconn.flows.resource import Grant
from oauthconn.models import Connection

if TYPE_CHECKING:
    from oauthconn.types import Owner

#: Characters of the response body shown to the admin; the rest is cut.
EXCERPT_CHARS = 500


@dataclass(frozen=True)
class ProbeResult:
    """What the test call returned. ``body_excerpt`` is text: templates escape it."""

    status_code: int
    body_excerpt: str
    url: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


def probe_url(connection: Connection, base_url: str | None = None) -> str:
    """The URL "Test" calls, or ConfigurationError when the connection has neither target.

    ``base_url``: the grant's resolved API base URL when it has per-grant fields.
    """
    if connection.test_path and connection.api_base_url:
        base = (base_url or connection.api_base_url).rstrip("/") + "/"
        return urljoin(base, connection.test_path.lstrip("/"))
    if connection.provider.userinfo_endpoint:
        return connection.provider.userinfo_endpoint
    raise ConfigurationError(
        f"{connection.name} has no test path (with an API base URL) and its provider no "
        "userinfo endpoint: set a test path on the connection."
    )


def probe_connection(connection: Connection, owner: Owner = None) -> ProbeResult:
    """Call the test URL with the connection's current token (refreshed first if due).

    Raises the token errors of ``get_valid_token`` (``NotConnected``,
    ``ReauthorizationRequired``...), transport errors, and ``DisallowedResourceURL`` for a
    test path that leaves the API base URL's origin.
    """
    grant = Grant(connection, owner)
    templated = connection.test_path and grant_fields(connection.api_base_url)
    resolved = grant.api_base_url() if templated else None
    url = probe_url(connection, resolved)
    if connection.test_path and connection.api_base_url:
        with grant.client() as client:
            response = http.send(client, "GET", url)
    else:
        token = grant.token()
        headers = {"Authorization": f"Bearer {token.require_access_token().reveal()}"}
        with http.build_client() as client:
            response = http.send(client, "GET", url, headers=headers)
    return ProbeResult(response.status_code, _excerpt(response.content), url)


def _excerpt(content: bytes) -> str:
    text = content[: EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    if len(text) > EXCERPT_CHARS:
        return text[:EXCERPT_CHARS] + " …"
    return text

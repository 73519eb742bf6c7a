"""Pushed authorization requests on the flow side (RFC 9126; SECURITY R55).

The request is built and parsed in :mod:`oauthconn.oauth.par`; this module picks the
connection's endpoint and credentials and sends the push through the guarded HTTP client.
"""

from __future__ import annotations

from oauthconn import http
from oauthconn.exceptions import ConfigurationError
from oauthconn.flows.common import credentials_for
from oauthconn.models import Connection
from oauthconn.oauth.par import push_authorization_request, pushed_authorization_url


def pushed_url(connection: Connection, params: dict[str, str]) -> str:
    """Push the request (RFC 9126 §2) and return the browser's URL carrying only its reference.

    Raises the token endpoint's kind of ``ProviderError`` when the push is refused, and
    ``ConfigurationError`` when the provider has no push endpoint.
    """
    endpoint = connection.provider.pushed_authorization_request_endpoint
    if not endpoint:
        raise ConfigurationError(
            f"{connection.provider.name} has no pushed authorization request endpoint "
            "(RFC 9126): turn off pushed requests, or rediscover the provider."
        )
    http.check_url(endpoint, field="pushed authorization request endpoint")
    with http.build_client() as client:
        pushed = push_authorization_request(
            client, endpoint, params, credentials=credentials_for(connection)
        )
    return pushed_authorization_url(
        connection.provider.authorization_endpoint,
        client_id=connection.client_id,
        request_uri=pushed.request_uri,
    )

"""Connecting by an API's URL: protected resource metadata, discovery, dynamic registration.

The protocol work is in :mod:`oauthconn.oauth.resource_metadata` (RFC 9728),
:mod:`oauthconn.oauth.discovery` (RFC 8414 / OpenID) and :mod:`oauthconn.oauth.registration`
(RFC 7591 / 7592); this module chains them for the wizard and the API and keeps what a
registration issued on the connection, encrypted (SECURITY R56, R57).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from oauthconn import http
from oauthconn.exceptions import DiscoveryFailed, OAuthConnError
from oauthconn.flows.discovery import discover_provider
from oauthconn.models import Connection
from oauthconn.oauth.registration import (
    Registration,
    choose_auth_method,
    delete_registration,
    register_client,
    registration_request,
)
from oauthconn.oauth.resource_metadata import fetch_resource_metadata

logger = logging.getLogger("oauthconn")


@dataclass(frozen=True)
class ResourceServer:
    """What an API's URL led to: the resource and its authorization server's Provider fields."""

    resource: str
    provider_fields: dict[str, Any]
    scopes: tuple[str, ...] = ()


def discover_resource(resource: str) -> ResourceServer:
    """RFC 9728 then RFC 8414: the resource's first authorization server, discovered.

    The discovered issuer must equal the one the resource names exactly (RFC 8414 §3.3,
    checked by discovery); every URL on the way passes the SSRF guard. Raises
    :class:`DiscoveryFailed` naming what went wrong.
    """
    with http.build_client() as client:
        metadata = fetch_resource_metadata(client, resource)
    issuer = metadata.authorization_servers[0]
    try:
        fields = discover_provider(issuer)
    except DiscoveryFailed as err:
        raise DiscoveryFailed(
            f"The resource's authorization server {issuer} failed discovery: {err}"
        ) from err
    fields["discovered_at"] = fields["discovered_at"].isoformat()
    return ResourceServer(resource, fields, metadata.scopes_supported)


def register(
    registration_endpoint: str,
    *,
    redirect_uri: str,
    client_name: str,
    auth_methods: Iterable[str],
    scope: str = "",
) -> Registration:
    """Register a client for a connection at ``registration_endpoint`` (RFC 7591).

    Raises ``RegistrationRefused`` (nothing registered) or a ``TransportError``.
    """
    http.check_url(registration_endpoint, field="registration endpoint")
    metadata = registration_request(
        redirect_uri=redirect_uri,
        client_name=client_name,
        auth_method=choose_auth_method(tuple(auth_methods)),
        scope=scope,
    )
    with http.build_client() as client:
        return register_client(client, registration_endpoint, metadata)


def registration_fields(registration: Registration) -> dict[str, Any]:
    """The Connection fields a registration fills (secrets are encrypted by their fields)."""
    return {
        "client_id": registration.client_id,
        "client_secret": registration.client_secret or "",
        "client_auth_method": registration.token_endpoint_auth_method,
        "registration_access_token": registration.registration_access_token or "",
        "registration_client_uri": registration.registration_client_uri,
        "registered_automatically": True,
    }


def end_registrations(connections: Iterable[Connection]) -> None:
    """RFC 7592 §2.3 for each automatically registered connection about to be deleted.

    Best effort: a failure is logged (the connection's slug and the reason, never the
    registration access token) and does not stop the deletion, since the client registration
    without this site's secrets can do nothing, and a provider that is down must not keep an
    admin from deleting a connection.
    """
    for connection in connections:
        token = connection.registration_access_token
        if not (connection.registered_automatically and connection.registration_client_uri):
            continue
        if token is None:
            continue
        try:
            with http.build_client() as client:
                delete_registration(client, connection.registration_client_uri, token.reveal())
        except OAuthConnError as err:
            logger.warning(
                "The registration of %s could not be deleted at the provider: %s",
                connection.slug,
                err,
            )
        else:
            logger.info("The registration of %s was deleted at the provider.", connection.slug)

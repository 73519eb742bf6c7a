"""Discovery on the database side: metadata → ``Provider`` fields, and refreshing a provider.

The protocol work (fetching and validating) is :func:`oauthconn.oauth.discovery.discover`;
this module maps its result onto ``Provider`` and records when it was fetched.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from oauthconn import http
from oauthconn.exceptions import DiscoveryFailed
from oauthconn.models import Provider
from oauthconn.oauth.discovery import ServerMetadata, discover
from oauthconn.oauth.idtoken import ASYMMETRIC_ALGORITHMS

#: Provider fields copied from metadata as they are.
_COPIED = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "userinfo_endpoint",
    "jwks_uri",
    "sends_issuer",
)
#: Provider list fields copied from the metadata's tuples.
_LISTS = (
    "scopes_supported",
    "supported_grant_types",
    "code_challenge_methods",
    "token_endpoint_auth_methods",
    "id_token_signing_algs",
)


def provider_fields_from_metadata(meta: ServerMetadata) -> dict[str, Any]:
    """The ``Provider`` keyword arguments a metadata document fills (not saved)."""
    fields: dict[str, Any] = {name: getattr(meta, name) for name in _COPIED}
    fields.update({name: list(getattr(meta, name)) for name in _LISTS})
    # R32: metadata may widen the allow-list only with asymmetric algorithms; HS256 (keyed
    # with the client secret) must be added by an admin, and "none" never.
    fields["id_token_signing_algs"] = [
        alg for alg in meta.id_token_signing_algs if alg in ASYMMETRIC_ALGORITHMS
    ]
    fields["metadata"] = meta.raw
    return fields


def discover_provider(issuer: str) -> dict[str, Any]:
    """Fetch ``issuer``'s metadata and return the ``Provider`` fields, with ``discovered_at``.

    Raises :class:`DiscoveryFailed` (see :func:`oauthconn.oauth.discovery.discover`).
    """
    with http.build_client() as client:
        meta = discover(client, issuer)
    return {**provider_fields_from_metadata(meta), "discovered_at": timezone.now()}


def refresh_discovery(provider: Provider) -> Provider:
    """Re-fetch ``provider``'s metadata and save it; on failure the row is unchanged.

    Raises :class:`DiscoveryFailed` when the provider has no issuer or discovery fails.
    """
    if not provider.issuer:
        raise DiscoveryFailed(f"{provider.name} has no issuer to discover from.")
    fields = discover_provider(provider.issuer)
    with transaction.atomic():
        locked = Provider.objects.select_for_update().get(pk=provider.pk)
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save()
    return locked

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
from oauthconn.flows.configuration import SECURITY_RELEVANT_PROVIDER_FIELDS, has_stored_grant
from oauthconn.models import Provider
from oauthconn.oauth.discovery import ServerMetadata, discover
from oauthconn.oauth.idtoken import ASYMMETRIC_ALGORITHMS

#: Provider fields copied from metadata as they are.
_COPIED = (*Provider.URL_FIELDS, "sends_issuer", "requires_par")
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


def refresh_discovery(provider: Provider, *, accept_moved_endpoints: bool = False) -> Provider:
    """Re-fetch ``provider``'s metadata and save it; on failure the row is unchanged.

    Metadata that moves an endpoint of a provider whose connections hold secrets or grants
    is refused unless ``accept_moved_endpoints``: moving the token endpoint is how a stored
    refresh token or client secret would leave (R5), so an admin reviews the change in the
    provider's form, which invalidates what it must. Raises :class:`DiscoveryFailed` when
    the provider has no issuer, discovery fails, or endpoints moved.
    """
    if not provider.issuer:
        raise DiscoveryFailed(f"{provider.name} has no issuer to discover from.")
    fields = discover_provider(provider.issuer)
    with transaction.atomic():
        locked = Provider.objects.select_for_update().get(pk=provider.pk)
        moved = moved_endpoints(locked, fields)
        if moved and not accept_moved_endpoints and _holds_secrets(locked):
            raise DiscoveryFailed(
                f"The metadata of {locked.name} moves endpoints ({'; '.join(moved)}) while "
                "its connections hold secrets or tokens: review the change and edit the "
                "provider instead."
            )
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save()
    return locked


def moved_endpoints(provider: Provider, fields: dict[str, Any]) -> list[str]:
    """``"name: old -> new"`` for each security-relevant URL the new fields change."""
    return [
        f"{name}: {getattr(provider, name) or '(none)'} -> {fields[name] or '(none)'}"
        for name in sorted(SECURITY_RELEVANT_PROVIDER_FIELDS)
        if name in fields and getattr(provider, name) != fields[name]
    ]


def _holds_secrets(provider: Provider) -> bool:
    return any(
        c.client_secret is not None or c.private_key is not None or has_stored_grant(c)
        for c in provider.connections.all()
    )

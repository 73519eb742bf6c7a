"""Providers made from typed or discovered endpoints: one row per authorization server."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.dateparse import parse_datetime

from oauthconn.models import Provider

#: Fields that say two providers are the same server: the same row serves both connections.
#: Not the JWKS URI: the wizard does not ask for it, so a typed provider has none.
IDENTITY_FIELDS = tuple(name for name in Provider.URL_FIELDS if name != "jwks_uri")


def find_or_create_provider(
    fields: Mapping[str, Any], *, slug: str, name: str
) -> tuple[Provider, bool]:
    """The provider with these endpoints, or a new one (``slug`` made unique): (row, created).

    ``fields`` are Provider keyword arguments (a preset's, discovery's or typed ones); a
    ``discovered_at`` kept as text in the wizard's session is parsed back.
    """
    same = Provider.objects.filter(**{n: fields.get(n, "") for n in IDENTITY_FIELDS}).first()
    if same is not None:
        return same, False
    values = dict(fields)
    if isinstance(values.get("discovered_at"), str):
        values["discovered_at"] = parse_datetime(values["discovered_at"])
    values["slug"] = unique_provider_slug(values.get("slug") or slug)
    values.setdefault("name", name)
    return Provider.objects.create(**values), True


def unique_provider_slug(base: str) -> str:
    """``base``, or ``base-2``, ``base-3``... whichever no provider has yet."""
    slug, n = base[:50], 2
    while Provider.objects.filter(slug=slug).exists():
        slug, n = f"{base[:45]}-{n}", n + 1
    return slug

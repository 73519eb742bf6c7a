"""Refresh the discovered metadata of one, several or all providers that have an issuer."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from oauthconn.exceptions import DiscoveryFailed
from oauthconn.flows.discovery import refresh_discovery
from oauthconn.models import Provider


class Command(BaseCommand):
    help = (
        "Fetch each provider's metadata again (RFC 8414 / OpenID Connect Discovery) and save "
        "its endpoints, JWKS URI and capabilities. Without slugs: every provider with an issuer."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "slugs", nargs="*", help="Provider slugs (default: all with an issuer)."
        )

    def handle(self, *args: Any, slugs: list[str], **options: Any) -> None:
        failed = 0
        for provider in self.providers(slugs):
            try:
                refresh_discovery(provider)
            except DiscoveryFailed as err:
                failed += 1
                self.stderr.write(f"{provider.slug}: {err}")
            else:
                self.stdout.write(f"{provider.slug}: metadata refreshed.")
        if failed:
            raise CommandError(f"Discovery failed for {failed} provider(s).")

    def providers(self, slugs: list[str]) -> list[Provider]:
        if not slugs:
            return list(Provider.objects.exclude(issuer=""))
        found = {p.slug: p for p in Provider.objects.filter(slug__in=slugs)}
        missing = sorted(set(slugs) - set(found))
        if missing:
            raise CommandError(f"No provider with slug {', '.join(missing)}.")
        return [found[slug] for slug in slugs]

"""Retry revocations that failed for a passing reason when a grant was disconnected."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from oauthconn.flows.revocation import retry_pending_revocations


class Command(BaseCommand):
    help = (
        "Retry the revocations at providers that were down when a connection was "
        "disconnected (RFC 7009 §2.2.1). Run it from cron next to oauthconn_refresh. Exits 1 "
        "when a revocation had to be given up: revoke that grant at the provider by hand."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        summary = retry_pending_revocations()
        self.stdout.write(
            f"revoked {summary.revoked}, still pending {summary.pending}, "
            f"given up {summary.given_up}"
        )
        if summary.given_up:
            raise CommandError(f"{summary.given_up} revocation(s) given up; see the events.")

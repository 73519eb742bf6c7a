"""Report grants that need attention; exit non-zero when any does (for monitoring)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from oauthconn.models import Token
from oauthconn.status import EXPIRING, FAILING, NEEDS_REAUTH, STATUS_LABELS, token_status

#: Statuses that make the command fail: someone has to act (or the provider is in trouble).
ALERTING = (FAILING, NEEDS_REAUTH)


class Command(BaseCommand):
    help = (
        "List grants that are failing, need reauthorization or expire soon, with the last "
        "error in plain words. Exits 1 when any is failing or needs reauthorization."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="One JSON object per line.")

    def handle(self, *args, **options) -> None:
        rows = list(self.rows())
        for row in rows:
            self.stdout.write(self.as_json(row) if options["json"] else self.as_text(row))
        alerting = sum(row["status"] in ALERTING for row in rows)
        total = Token.objects.count()
        self.stdout.write(
            f"{total} grant(s): {len(rows)} need attention, {alerting} failing or needing "
            "reauthorization."
        )
        if alerting:
            raise CommandError(f"{alerting} grant(s) failing or needing reauthorization.")

    def rows(self):
        tokens = Token.objects.select_related("connection", "owner").order_by("connection__slug")
        for token in tokens:
            status = token_status(token)
            if status in (*ALERTING, EXPIRING):
                yield {
                    "connection": token.connection.slug,
                    "owner": token.owner.get_username() if token.owner else None,
                    "status": status,
                    "last_error": token.last_error,
                    "expires_at": token.expires_at.isoformat() if token.expires_at else None,
                }

    @staticmethod
    def as_text(row: dict) -> str:
        owner = f" ({row['owner']})" if row["owner"] else ""
        error = f": {row['last_error']}" if row["last_error"] else ""
        return f"{row['connection']}{owner}: {STATUS_LABELS[row['status']]}{error}"

    @staticmethod
    def as_json(row: dict) -> str:
        return json.dumps(row)

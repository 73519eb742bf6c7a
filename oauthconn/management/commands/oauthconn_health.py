"""Report grants that need attention; exit non-zero when any does (for monitoring).

``--summary`` prints the health overview's figures instead of one row per grant (with
``--json``: exactly one JSON object, the same figures as the admin's health page).
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from collections.abc import Iterator, Mapping
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from oauthconn.flows.health import Health, compute_health
from oauthconn.models import Token
from oauthconn.status import EXPIRING, FAILING, NEEDS_REAUTH, STATUS_LABELS, token_filter

#: Statuses that make the command fail: someone has to act (or the provider is in trouble).
ALERTING = (FAILING, NEEDS_REAUTH)


class Command(BaseCommand):
    help = (
        "List grants that are failing, need reauthorization or expire soon, with the last "
        "error in plain words. Exits 1 when any is failing or needs reauthorization."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="One JSON object per line.")
        parser.add_argument(
            "--summary",
            action="store_true",
            help="Print the overview's counts instead of one row per grant (one JSON object "
            "with --json).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["summary"]:
            self.summarize(compute_health(), as_json=options["json"])
            return
        rows = list(self.rows())
        if options["json"]:
            lines = [self.as_json(row) for row in rows]
        else:
            # Translated once, not once per line (2,000 lazy lookups at a million grants).
            labels = {status: str(label) for status, label in STATUS_LABELS.items()}
            lines = [self.as_text(row, labels) for row in rows]
        for line in lines:
            self.stdout.write(line)
        alerting = sum(row["status"] in ALERTING for row in rows)
        total = Token.objects.count()
        self.stdout.write(
            f"{total} grant(s): {len(rows)} need attention, {alerting} failing or needing "
            "reauthorization."
        )
        if alerting:
            raise CommandError(f"{alerting} grant(s) failing or needing reauthorization.")

    def summarize(self, health: Health, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(health.as_dict()))
        else:
            for line in summary_lines(health):
                self.stdout.write(line)
        alerting = sum(health.by_status.get(status, 0) for status in ALERTING)
        if alerting:
            raise CommandError(f"{alerting} grant(s) failing or needing reauthorization.")

    def rows(self) -> Iterator[dict[str, Any]]:
        # Only the grants that need attention leave the database, not every grant, and only
        # the columns a line shows, as tuples: building a model instance of each grant and
        # its connection was most of the command's time (2,000 grants at a million).
        attention = Q(status__in=ALERTING) | token_filter(EXPIRING)
        username = f"owner__{get_user_model().USERNAME_FIELD}"
        tokens = Token.objects.filter(attention).order_by("connection__slug", "pk")
        fields = ("connection__slug", username, "owner_key", "status", "last_error", "expires_at")
        for slug, user, owner_key, status, last_error, expires_at in tokens.values_list(*fields):
            yield {
                "connection": slug,
                # get_username() without building the user: USERNAME_FIELD's value.
                "owner": user if user is not None else owner_key or None,
                # The filter is token_status's vocabulary (oauthconn.status): a grant that
                # is not failing or needing reauthorization is there because it is expiring.
                "status": status if status in ALERTING else EXPIRING,
                "last_error": last_error,
                "expires_at": expires_at,
            }

    @staticmethod
    def as_text(row: dict, labels: Mapping[str, str]) -> str:
        owner = f" ({row['owner']})" if row["owner"] else ""
        error = f": {row['last_error']}" if row["last_error"] else ""
        return f"{row['connection']}{owner}: {labels[row['status']]}{error}"

    @staticmethod
    def as_json(row: dict) -> str:
        expires_at = row["expires_at"]
        return json.dumps({**row, "expires_at": expires_at.isoformat() if expires_at else None})


def summary_lines(health: Health) -> list[str]:
    """The overview in plain words, one figure per line."""
    statuses = ", ".join(f"{n} {status}" for status, n in health.by_status.items())
    lines = [f"{health.grants} grant(s): {statuses}."]
    for window, figures in health.expiring.items():
        lines.append(
            f"Within {window}: {figures['access_token']} access token(s) end without a refresh "
            f"token, {figures['refresh_token']} refresh token(s) expire or go idle."
        )
    failures = ", ".join(f"{name}: {n}" for name, n in health.failures_by_provider) or "none"
    lines.append(f"Refresh failures in the last 24 hours by provider: {failures}.")
    lines.append(f"Last 7 days: {sum(health.refreshes)} refreshed, {sum(health.failures)} failed.")
    return lines

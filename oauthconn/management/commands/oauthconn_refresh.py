"""Refresh tokens before they expire, and keep idle refresh tokens alive (docs/lifecycle.md)."""

from __future__ import annotations

import os
import time
from argparse import ArgumentParser
from dataclasses import dataclass
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from oauthconn.exceptions import WorkerDied
from oauthconn.flows.proactive import Policy, Summary, refresh_due
from oauthconn.notifications import deliver_due

BAR_WIDTH = 30


@dataclass(frozen=True)
class Effort:
    """Wall-clock seconds, and CPU seconds of this process, its threads and the worker
    processes it has waited for (``--processes``)."""

    wall: float
    cpu: float

    @classmethod
    def so_far(cls) -> Effort:
        times = os.times()
        cpu = times.user + times.system + times.children_user + times.children_system
        return cls(time.perf_counter(), cpu)

    def since(self, start: Effort) -> Effort:
        return Effort(self.wall - start.wall, self.cpu - start.cpu)


class Command(BaseCommand):
    help = (
        "Refresh every connection whose access token expires within --window seconds, whose "
        "refresh token has been idle for --idle-days, or whose refresh token expires within "
        "--refresh-window seconds. Safe to run as several copies on several hosts (rows "
        "another copy holds are skipped). Exits with status 1 when any refresh failed."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--window", type=float, help="Seconds (default PROACTIVE_WINDOW).")
        parser.add_argument(
            "--idle-days", type=float, help="Days (default IDLE_REFRESH_DAYS; 0 turns it off)."
        )
        parser.add_argument(
            "--refresh-window", type=float, help="Seconds (default REFRESH_TOKEN_WINDOW)."
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            help="Refreshes in flight in all processes (default PROACTIVE_CONCURRENCY).",
        )
        parser.add_argument(
            "--processes",
            type=int,
            help=(
                "Worker processes, each running ceil(concurrency / processes) threads (default "
                "PROACTIVE_PROCESSES). More than 1 helps when the run's own CPU is the bound "
                "(a provider that answers at once). Not on SQLite, which runs one."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("concurrency", "processes"):
            if options[name] is not None and options[name] < 1:
                raise CommandError(f"--{name} must be at least 1.")
        policy = Policy.from_settings(
            window=options["window"],
            idle_days=options["idle_days"],
            refresh_window=options["refresh_window"],
        )
        on_terminal = self.stdout.isatty()
        start = Effort.so_far()
        try:
            summary = refresh_due(
                policy,
                concurrency=options["concurrency"],
                processes=options["processes"],
                on_progress=self.draw_bar if on_terminal else None,
            )
        except WorkerDied as err:
            raise CommandError(str(err)) from err
        effort = Effort.so_far().since(start)
        if on_terminal:
            self.stdout.write("")
        if options["verbosity"] >= 2:
            self.report_effort(summary, effort)
        self.deliver_notifications()
        self.report(summary)

    def report_effort(self, summary: Summary, effort: Effort) -> None:
        """What the run took, for sizing workers (docs/lifecycle.md): ``-v 2``."""
        tokens = sum(summary.as_dict().values())
        rate = f" ({tokens / effort.wall:.0f} per second)" if tokens and effort.wall else ""
        self.stdout.write(
            f"Due tokens: {tokens}, in {effort.wall:.3f} s and {effort.cpu:.3f} s of CPU{rate}."
        )

    def deliver_notifications(self) -> None:
        """Send the outbox (docs/operations.md): this run's state changes and due retries."""
        counts = deliver_due()
        if any(counts.values()):
            self.stdout.write(
                "Notifications: {delivered} delivered, {retry} to retry, "
                "{given_up} given up.".format(**counts)
            )

    def draw_bar(self, done: int, total: int) -> None:
        filled = BAR_WIDTH * done // max(total, 1)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.stdout.write(f"\r[{bar}] {done}/{total}", ending="")
        self.stdout.flush()

    def report(self, summary: Summary) -> None:
        if summary.ok:
            self.stdout.write(summary.line())
            return
        # The line still goes to stdout for log scrapers; the exit status says it failed.
        self.stdout.write(summary.line())
        raise CommandError(
            "Some connections could not be refreshed; see their status and events in the admin."
        )

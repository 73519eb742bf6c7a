"""Celery task for proactive refresh (needs Celery; see docs/lifecycle.md for a beat schedule).

Importing this module never requires Celery. Without it, ``refresh_connections`` is a plain
function that raises ``ImproperlyConfigured`` when called, naming what to install.

    CELERY_BEAT_SCHEDULE = {
        "oauthconn-refresh": {"task": "oauthconn.refresh_connections", "schedule": 300.0},
    }
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured

from oauthconn.flows.proactive import Policy, refresh_due
from oauthconn.notifications import deliver_due

TASK_NAME = "oauthconn.refresh_connections"


def run_refresh(
    window: float | None = None,
    idle_days: float | None = None,
    refresh_window: float | None = None,
    concurrency: int | None = None,
) -> dict[str, int]:
    """The task's body: the same work as ``manage.py oauthconn_refresh`` (refresh, then
    deliver due notifications); returns the counts.

    Always in one process, whatever ``PROACTIVE_PROCESSES`` says: Celery's prefork workers
    are daemonic processes, which may not have children. To use more cores, run more Celery
    workers: each claims its own chunks of rows, as several copies of the command do.
    """
    policy = Policy.from_settings(window=window, idle_days=idle_days, refresh_window=refresh_window)
    run = refresh_due(policy, concurrency=concurrency, processes=1, source=TASK_NAME)
    counts = run.as_dict()
    # After the refreshes, so the notifications their state changes queued go out now. The
    # result keeps its shape (callers compare it); failed deliveries are logged and retried.
    deliver_due()
    return counts


try:
    from celery import shared_task
except ImportError:  # Celery is optional: only the task needs it.
    shared_task = None


if shared_task is not None:
    # A task that fails for a provider is not retried by Celery: the next beat run (and each
    # token's own backoff) takes care of it.
    refresh_connections: Any = shared_task(name=TASK_NAME, ignore_result=False)(run_refresh)
else:

    def refresh_connections(*args: Any, **kwargs: Any) -> dict[str, int]:
        raise ImproperlyConfigured(
            "oauthconn.tasks.refresh_connections needs Celery: pip install celery, or run "
            "`manage.py oauthconn_refresh` from cron instead."
        )

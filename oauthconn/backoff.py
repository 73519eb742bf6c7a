"""Capped exponential backoff with jitter: one formula for every retry schedule of oauthconn
(token renewals, revocations, notification deliveries), each with its own base and cap."""

from __future__ import annotations

import random


def jittered_backoff(
    attempts: int, *, base: float, cap: float, retry_after: float | None = None
) -> float:
    """Seconds to wait after ``attempts`` failures: ``base`` doubled per further failure, at
    most ``cap``, times a random 0.8-1.2 so that many waiters do not return in step. A
    server's ``retry_after`` wins when longer, up to ``cap`` too."""
    delay = min(cap, base * 2 ** max(attempts - 1, 0)) * random.uniform(0.8, 1.2)
    if retry_after:
        delay = max(delay, min(float(retry_after), cap))
    return delay

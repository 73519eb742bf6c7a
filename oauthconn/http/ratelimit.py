"""The rate-limit headers an API sends, parsed: ``oauthconn.rate_limit(response)``.

Two spellings are common: the IETF draft's ``RateLimit-Limit`` / ``RateLimit-Remaining`` /
``RateLimit-Reset`` (draft-ietf-httpapi-ratelimit-headers up to -06; ``Reset`` in seconds from
now) and the older ``X-RateLimit-*`` (GitHub, Twitter, many others), whose ``Reset`` is a Unix
time at some providers and seconds from now at others. Nothing here changes a request; site
code reads the numbers to pace itself. Malformed values are ignored, never raised.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

__all__ = ["RateLimit", "rate_limit"]

# A Reset above this is a Unix time (seconds since 1970, 2001-09 onwards), not a delay: no
# window lasts 31 years, and GitHub's and Twitter's epoch values are all far past it.
_EPOCH_THRESHOLD = 10**9
_PREFIXES = ("RateLimit-", "X-RateLimit-")


@dataclass(frozen=True)
class RateLimit:
    """What the response says about the caller's quota; any part may be unknown (None).

    ``limit``: requests allowed in the window; ``remaining``: left in it; ``reset``: seconds
    until the window resets (from the response's arrival, never negative).
    """

    limit: int | None
    remaining: int | None
    reset: float | None

    @property
    def exhausted(self) -> bool:
        """True when the server says no request is left in this window."""
        return self.remaining == 0


def rate_limit(response: httpx.Response, *, now: float | None = None) -> RateLimit | None:
    """The rate limit ``response`` announces, or None when it sends no such header.

    ``RateLimit-*`` wins over ``X-RateLimit-*`` when both are there. ``now`` (Unix seconds)
    converts a Unix-time ``Reset``; the current time by default.
    """
    headers = response.headers
    for prefix in _PREFIXES:
        limit = _integer(headers.get(prefix + "Limit"))
        remaining = _integer(headers.get(prefix + "Remaining"))
        reset = _reset(headers.get(prefix + "Reset"), now)
        if limit is not None or remaining is not None or reset is not None:
            return RateLimit(limit, remaining, reset)
    return None


def _integer(value: str | None) -> int | None:
    # A list ("100, 100;w=60" in some drafts) names the binding quota first.
    text = (value or "").split(",")[0].split(";")[0].strip()
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text[:18])


def _reset(value: str | None, now: float | None) -> float | None:
    seconds = _integer(value)
    if seconds is None:
        return None
    if seconds > _EPOCH_THRESHOLD:
        return max(seconds - (time.time() if now is None else now), 0.0)
    return float(seconds)

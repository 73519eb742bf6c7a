"""Webhook signatures: HMAC-SHA256 over ``timestamp + "." + body`` with a shared secret.

Headers sent with every delivery::

    X-Oauthconn-Timestamp: 1767225600            (Unix seconds when this attempt was sent)
    X-Oauthconn-Signature: v1=<hex HMAC-SHA256(secret, b"1767225600." + body)>

A receiver recomputes the HMAC over the raw body it received, compares in constant time, and
rejects timestamps older (or newer) than a few minutes: a captured request replayed later
then fails. Each retry is signed afresh with its own timestamp. Receivers should also drop
repeated ``id`` values: delivery is at least once.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-Oauthconn-Timestamp"
SIGNATURE_HEADER = "X-Oauthconn-Signature"
VERSION = "v1"
#: Seconds a receiver should accept between the timestamp and its own clock.
DEFAULT_TOLERANCE = 300


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``timestamp + "." + body`` under ``secret``."""
    message = timestamp.encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The two headers for one delivery attempt of ``body``."""
    timestamp = str(int(now if now is not None else time.time()))
    return {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: f"{VERSION}={signature(secret, timestamp, body)}",
    }


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    header: str,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """True when ``header`` signs ``body`` at ``timestamp`` and the timestamp is recent.

    What a Python receiver can call (or copy the five lines of); a stale or future timestamp
    is rejected even with a valid signature, which stops replays.
    """
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - sent) > tolerance:
        return False
    expected = f"{VERSION}={signature(secret, timestamp, body)}"
    return hmac.compare_digest(expected.encode(), (header or "").encode())

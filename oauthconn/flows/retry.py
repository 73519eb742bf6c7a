"""Calls that survive an API's rate limits: opt-in retries on 429 and 503 (docs/calls.md).

:class:`RetryingAuth` wraps a connection's :class:`~oauthconn.flows.resource.ConnectionAuth`
(which sends the token and refreshes once on 401 or the connection's ``refresh_on_status``).
When the connection (``retry_rate_limited``) or the call (``retry=True``) asks for it, an
idempotent request answered 429 or 503 is sent again after the server's ``Retry-After``
(RFC 9110 §10.2.3; seconds or an HTTP-date) or, without one, a jittered exponential backoff.

No worker hangs: a ``Retry-After`` longer than ``max_retry_wait`` ends the call at once, and
no wait is started that would end past the call's deadline (``REQUEST_DEADLINE``, or the
client's ``deadline=``, counted from the first attempt; each attempt is still bounded by its
own deadline in the transport). When it stops on a 429 or 503, the call raises
:class:`~oauthconn.exceptions.RateLimited` / :class:`~oauthconn.exceptions.RetriesExhausted`
carrying the last response. With retries off, that response is returned as it always was.
These rules are SECURITY R60; the extra refresh statuses (in ``ConnectionAuth``) are R61.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any

import httpx

from oauthconn.backoff import jittered_backoff
from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import RateLimited, RetriesExhausted
from oauthconn.http import parse_retry_after
from oauthconn.models import Connection

#: RFC 9110 §9.2.2: sending these twice has the effect of sending them once. POST and PATCH
#: are retried only when the caller says the request is idempotent (an idempotency key...).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
#: Too Many Requests (RFC 6585 §4) and Service Unavailable (RFC 9110 §15.6.4).
RETRY_STATUSES = frozenset({429, 503})
#: The first backoff without Retry-After, doubled per attempt (capped by max_retry_wait).
BACKOFF_BASE = 0.5
#: Request extensions that override the connection per call (see :func:`call_extensions`).
RETRY_EXTENSION = "oauthconn_retry"
IDEMPOTENT_EXTENSION = "oauthconn_idempotent"


def call_extensions(retry: bool | None = None, idempotent: bool | None = None) -> dict[str, bool]:
    """httpx request ``extensions`` that override the connection's retry settings for one
    call: ``retry`` turns retries on or off, ``idempotent`` says whether the request may be
    sent twice (default: by its method). None leaves a setting as it is."""
    extensions = {}
    if retry is not None:
        extensions[RETRY_EXTENSION] = bool(retry)
    if idempotent is not None:
        extensions[IDEMPOTENT_EXTENSION] = bool(idempotent)
    return extensions


@dataclass(frozen=True)
class RetryPolicy:
    """A connection's retry settings, read once per client."""

    enabled: bool
    max_attempts: int
    max_wait: float
    #: seconds from the first attempt after which no further attempt starts
    deadline: float

    @classmethod
    def of(cls, connection: Connection, *, deadline: float | None = None) -> RetryPolicy:
        return cls(
            enabled=connection.retry_rate_limited,
            max_attempts=max(int(connection.max_attempts), 1),
            max_wait=float(connection.max_retry_wait),
            deadline=float(oauthconn_settings.REQUEST_DEADLINE if deadline is None else deadline),
        )

    def applies_to(self, request: httpx.Request) -> bool:
        """Whether a 429 / 503 answer to ``request`` may be retried."""
        enabled = request.extensions.get(RETRY_EXTENSION, self.enabled)
        idempotent = request.extensions.get(IDEMPOTENT_EXTENSION)
        if idempotent is None:
            idempotent = request.method in IDEMPOTENT_METHODS
        return bool(enabled and idempotent) and self.max_attempts > 1


class Attempts:
    """The attempts of one call: when to send the next one, or the error that ends it."""

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self.started = clock()
        self.count = 1

    def next_wait(self, response: httpx.Response) -> float | None:
        """Seconds to wait before sending the request again; None: ``response`` is final.

        Raises :class:`RateLimited` (429) or :class:`RetriesExhausted` (503) when the call
        must stop: no attempt left, a Retry-After over the cap, or past the deadline.
        """
        if response.status_code not in RETRY_STATUSES:
            return None
        policy = self.policy
        asked = parse_retry_after(response.headers.get("Retry-After"))
        if self.count >= policy.max_attempts:
            raise self.error(response, f"after {self.count} attempts", asked)
        if asked is not None and asked > policy.max_wait:
            raise self.error(
                response,
                f"which asked to wait {asked:.0f} s, more than this connection's "
                f"{policy.max_wait:g} s (max_retry_wait)",
                asked,
            )
        wait = asked
        if wait is None:
            # The jitter may add 20 % to the cap; the admin's cap is the longest wait.
            backoff = jittered_backoff(self.count, base=BACKOFF_BASE, cap=policy.max_wait)
            wait = min(backoff, policy.max_wait)
        if self.clock() - self.started + wait >= policy.deadline:
            raise self.error(
                response,
                f"after {self.count} attempts: waiting {wait:.1f} s more would pass the "
                f"{policy.deadline:g} s deadline",
                wait,
            )
        self.count += 1
        return wait

    def error(
        self, response: httpx.Response, why: str, retry_after: float | None
    ) -> RetriesExhausted:
        # Host and path only: a query string may carry an API key. The standard reason
        # phrase, not the server's: that one is free text from the other side.
        url = response.request.url
        status = response.status_code
        kind = RateLimited if status == 429 else RetriesExhausted
        return kind(
            f"{response.request.method} {url.host}{url.path} answered {status} "
            f"{httpx.codes.get_reason_phrase(status)} {why}.",
            response=response,
            attempts=self.count,
            retry_after=retry_after,
        )


class RetryingAuth(httpx.Auth):
    """``inner`` (sync and async), run again after a 429 / 503 as :class:`RetryPolicy` says.

    ``sleep``, ``async_sleep`` and ``clock`` are the waiting and the time it uses (tests pass
    their own to record the waits instead of taking them).
    """

    def __init__(
        self,
        inner: httpx.Auth,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], Any] = time.sleep,
        async_sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.policy = policy
        self.sleep = sleep
        self.async_sleep = async_sleep
        self.clock = clock

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        if not self.policy.applies_to(request):
            yield from self.inner.sync_auth_flow(request)
            return
        attempts = Attempts(self.policy, self.clock)
        while True:
            response = yield from _relay(self.inner.sync_auth_flow(request))
            if response.status_code not in RETRY_STATUSES:
                return
            # Read now: the error carries the body, and a wait must not hold the connection.
            response.read()
            wait = attempts.next_wait(response)
            if wait is None:
                return
            self.sleep(wait)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        applies = self.policy.applies_to(request)
        attempts = Attempts(self.policy, self.clock)
        while True:
            # An async generator cannot "yield from": relay the inner flow by hand.
            flow = self.inner.async_auth_flow(request)
            try:
                outgoing = await anext(flow)
                while True:
                    response = yield outgoing
                    try:
                        outgoing = await flow.asend(response)
                    except StopAsyncIteration:
                        break
            finally:
                await flow.aclose()
            if not applies or response.status_code not in RETRY_STATUSES:
                return
            await response.aread()
            wait = attempts.next_wait(response)
            if wait is None:
                return
            await self.async_sleep(wait)


def _relay(
    flow: Generator[httpx.Request, httpx.Response],
) -> Generator[httpx.Request, httpx.Response, httpx.Response]:
    """Run ``flow`` to its end; return the last response it was given (the final one)."""
    try:
        outgoing = next(flow)
        while True:
            response = yield outgoing
            try:
                outgoing = flow.send(response)
            except StopIteration:
                return response
    finally:
        flow.close()


def retrying(
    inner: httpx.Auth, connection: Connection, *, deadline: float | None = None
) -> RetryingAuth:
    """``inner`` within ``connection``'s retry settings (a call may override them)."""
    return RetryingAuth(inner, RetryPolicy.of(connection, deadline=deadline))

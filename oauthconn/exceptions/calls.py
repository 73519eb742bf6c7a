"""What a call to a connection's API can end in once oauthconn has retried it (docs/calls.md)."""

from __future__ import annotations

import functools
from typing import Any

import httpx

from oauthconn.exceptions.base import OAuthConnError


class RetriesExhausted(OAuthConnError, httpx.HTTPStatusError):
    """The API still answered 429 or 503 when oauthconn stopped retrying (an opt-in).

    It stopped because the attempts ran out (``max_attempts``), or because the next wait was
    longer than the connection allows (``Retry-After`` over ``max_retry_wait``) or would end
    past the call's deadline: no worker sleeps for an hour. ``response`` is the last answer
    (body read), ``attempts`` how many requests were sent, ``retry_after`` the seconds the
    server asked for, or the wait oauthconn would have taken next (None: no wait was due).
    Also an ``httpx.HTTPStatusError``, so code that calls ``raise_for_status()`` and catches
    that keeps working.
    """

    code = "retries_exhausted"
    message = "The API was still unavailable after the last attempt."

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        attempts: int,
        retry_after: float | None = None,
    ) -> None:
        # HTTPStatusError's __init__, not OAuthConnError's: the latter's super() call would
        # reach HTTPStatusError without the request and response it requires.
        httpx.HTTPStatusError.__init__(self, message, request=response.request, response=response)
        self.details = {"status": response.status_code, "attempts": attempts}
        self.attempts = attempts
        self.retry_after = retry_after

    @property
    def status_code(self) -> int:
        return self.response.status_code

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle as cls(*args), which lacks the keyword-only arguments: a task
        # queue that pickles a failed task's exception (Celery's default) would fail on it.
        rebuild = functools.partial(
            type(self),
            str(self),
            response=self.response,
            attempts=self.attempts,
            retry_after=self.retry_after,
        )
        return (rebuild, ())


class RateLimited(RetriesExhausted):
    """:class:`RetriesExhausted` whose last answer was 429 Too Many Requests (RFC 6585 §4)."""

    code = "rate_limited"
    message = "The API was still rate limiting the calls after the last attempt."

"""Bounded requests: a cap on the decoded response size, typed errors (R46).

The deadline lives in the transport (:mod:`oauthconn.http.deadline`), so it also bounds
resource calls that never pass through :func:`send`.
"""

from __future__ import annotations

import logging
import ssl
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import (
    DeadlineExceeded,
    ProviderTimeout,
    ResponseTooLarge,
    TLSVerificationFailed,
    TransportError,
)
from oauthconn.http.policy import check_url

logger = logging.getLogger("oauthconn.http")

#: Retry-After values are honoured up to this many seconds (RFC 9110 §10.2.3, R38).
MAX_RETRY_AFTER = 3600


@dataclass(frozen=True)
class BoundedResponse:
    """A fully read, size-capped response: status, headers and the decoded body."""

    status_code: int
    headers: httpx.Headers
    content: bytes

    def __repr__(self) -> str:
        # Bodies may hold tokens; never show them.
        return f"<BoundedResponse {self.status_code}, {len(self.content)} bytes>"


def send(http: httpx.Client, method: str, url: str, **kwargs: Any) -> BoundedResponse:
    """Send one request and read at most ``MAX_RESPONSE_BYTES`` of decoded body (R46).

    ``http`` comes from :func:`oauthconn.http.build_client`, whose transport bounds the whole
    exchange by ``REQUEST_DEADLINE``: connect, TLS, status line, headers and body, however
    slowly each arrives (:class:`~oauthconn.exceptions.DeadlineExceeded`). Errors become
    oauthconn exceptions whose messages name the host, never the URL's query or the body.
    """
    parsed = check_url(url)  # parsed once: parsing a URL costs more than the rest of send
    host = parsed.host
    headers = httpx.Headers(kwargs.pop("headers", None))
    # Only codings _BoundedDecoder can cap; a server that ignores this is still handled.
    headers.setdefault("Accept-Encoding", "gzip, deflate")
    try:
        with http.stream(method, parsed, headers=headers, **kwargs) as response:
            content = _read_capped(response, host)
    except DeadlineExceeded:
        raise
    except httpx.TimeoutException as err:
        raise ProviderTimeout(f"{host} did not answer in time.", host=host) from err
    except httpx.ConnectError as err:
        raise _connect_error(err, host) from err
    except httpx.TransportError as err:
        raise TransportError(f"The connection to {host} failed.", host=host) from err
    logger.debug(
        "%s %s%s -> %s (%d bytes)", method, host, parsed.path, response.status_code, len(content)
    )
    return BoundedResponse(response.status_code, response.headers, content)


def _connect_error(err: httpx.ConnectError, host: str) -> TransportError:
    """Tell TLS failures apart from unreachable hosts (both arrive as ConnectError)."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return TLSVerificationFailed(
                f"TLS verification failed for {host}: check its certificate, or set "
                "OAUTHCONN['CA_BUNDLE'] for a private CA.",
                host=host,
            )
        cause = cause.__cause__ or cause.__context__
    return TransportError(f"Cannot reach {host}.", host=host)


def _read_capped(response: httpx.Response, host: str) -> bytes:
    """Read the raw stream and decode it under the size cap."""
    cap = int(oauthconn_settings.MAX_RESPONSE_BYTES)
    decoder = _BoundedDecoder(response.headers.get("Content-Encoding", ""), cap, host)
    # iter_raw, not iter_bytes: httpx would inflate a whole chunk before we could count it,
    # so a small gzip bomb could take far more memory than the cap.
    for chunk in response.iter_raw():
        decoder.feed(chunk)
    return decoder.finish()


class _BoundedDecoder:
    """Content-Encoding decoding (identity, gzip, deflate) that stops at ``cap`` bytes."""

    def __init__(self, encoding: str, cap: int, host: str) -> None:
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise TransportError(
                f"{host} sent an unsupported Content-Encoding: {encoding[:40]!r}.", host=host
            )
        # wbits 32+15 accepts both the zlib (deflate) and the gzip wrapper.
        self._zlib = zlib.decompressobj(32 + zlib.MAX_WBITS) if codings else None
        self._parts: list[bytes] = []
        self._size = 0
        self._cap = cap
        self._host = host

    def feed(self, data: bytes) -> None:
        if self._zlib is not None:
            try:
                # max_length one past the room left: output that long means "too large".
                data = self._zlib.decompress(data, self._cap - self._size + 1)
            except zlib.error as err:
                raise TransportError(
                    f"{self._host} sent a corrupt compressed response.", host=self._host
                ) from err
        self._add(data)

    def finish(self) -> bytes:
        if self._zlib is not None:
            self._add(self._zlib.flush(self._cap - self._size + 1))
        return b"".join(self._parts)

    def _add(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._cap:
            raise ResponseTooLarge(
                f"The response from {self._host} exceeded {self._cap} bytes.", host=self._host
            )
        self._parts.append(data)


# --- response helpers ------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (RFC 9110 §10.2.3), capped at an hour.

    Accepts delay-seconds or an HTTP-date; anything else is ignored (None).
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(min(int(value[:8]), MAX_RETRY_AFTER))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return float(min(max(seconds, 0.0), MAX_RETRY_AFTER))

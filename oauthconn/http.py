"""The one factory for outbound HTTP clients, and the SSRF guard under it (SECURITY R46, R47).

Nothing else in oauthconn constructs an ``httpx.Client``: token, revocation, discovery, JWKS
and resource calls all go through :func:`build_client` / :func:`build_async_client`, so every
one of them gets the same timeouts, User-Agent, TLS verification, no redirects, and the SSRF
guard. :func:`send` adds what httpx cannot express as client options: an overall deadline
and a cap on the decoded size of the response body.

How the SSRF guard works: httpcore opens TCP connections through a *network backend*. Ours
(:class:`GuardedBackend`, :class:`AsyncGuardedBackend`) resolves the host once, refuses the
connection if any resolved address is private, loopback, link-local, reserved or multicast,
and connects to the validated IP itself, so a DNS answer that changes between "check" and
"connect" (rebinding) cannot slip through. httpcore starts TLS afterwards with the URL's host
name, so SNI, certificate checks and the ``Host`` header stay those of the original name.

Pinned internals: httpx 0.28 keeps the httpcore pool in ``HTTPTransport._pool`` and the pool
keeps its backend in ``_network_backend``. :class:`GuardedTransport` refuses to start if
that layout changes (an httpx upgrade then fails loudly instead of silently dropping the
guard), and ``tests/test_http.py`` covers it.

Proxies from the environment (``HTTPS_PROXY``...) are ignored (``trust_env=False``): the guard
checks the address we connect to, which behind a proxy would be the proxy's, not the
destination's. Deployments that must use an egress proxy should enforce the policy there.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import anyio
import httpcore
import httpx

from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import (
    BlockedDestination,
    ConfigurationError,
    InsecureURL,
    ProviderTimeout,
    ResponseTooLarge,
    TLSVerificationFailed,
    TransportError,
)

logger = logging.getLogger("oauthconn.http")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Retry-After values are honoured up to this many seconds (RFC 9110 §10.2.3, R38).
MAX_RETRY_AFTER = 3600

# is_global misses these on Python 3.11: 192.0.0.0/24 holds a few "global" anycast
# addresses, but SECURITY §3.5 blocks the whole block.
_EXTRA_BLOCKED = (ipaddress.ip_network("192.0.0.0/24"),)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

#: build_client() keyword arguments that would switch a protection off.
_FORBIDDEN_KWARGS = frozenset({"verify", "transport", "mounts", "proxy", "trust_env", "app"})


# --- URL policy ------------------------------------------------------------------------------


def check_url(url: str, *, field: str = "URL") -> None:
    """Raise :class:`InsecureURL` unless ``url`` may be used for a server-side request.

    https only; http just for a loopback host (127.0.0.0/8, ::1, ``localhost``) while
    ``ALLOW_INSECURE_LOOPBACK`` is on (SECURITY R1, §3.5). No userinfo (it would be sent as
    credentials to whoever the host is) and no fragment (RFC 6749 §3.1, §3.2).
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as err:
        raise InsecureURL(f"{field} is not a valid URL.") from err
    if not parsed.host:
        raise InsecureURL(f"{field} must be an absolute URL with a host.")
    if parsed.userinfo:
        raise InsecureURL(f"{field} must not contain a user name or password.")
    if "#" in url:
        raise InsecureURL(f"{field} must not contain a fragment (#...).")
    if parsed.scheme == "https":
        return
    if parsed.scheme == "http" and _is_loopback_host(parsed.host):
        if oauthconn_settings.ALLOW_INSECURE_LOOPBACK:
            return
        raise InsecureURL(
            f"{field} uses http: allowed for loopback only with "
            "OAUTHCONN['ALLOW_INSECURE_LOOPBACK'] = True (development)."
        )
    raise InsecureURL(f"{field} must use https.")


def _is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (not for names that resolve there)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- the SSRF address policy -----------------------------------------------------------------


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, NAT64, 6to4), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def is_public_address(address: IPAddress) -> bool:
    """True when ``address`` is a global unicast address (SECURITY §3.5 list).

    IPv4-mapped, NAT64 and 6to4 addresses are judged by the IPv4 address they embed, so
    ``::ffff:127.0.0.1`` is loopback, not "some IPv6 address".
    """
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        return is_public_address(embedded)
    return not (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or any(address in net for net in _EXTRA_BLOCKED if net.version == address.version)
    )


def destination_allowed(host: str, address: IPAddress) -> bool:
    """Decide whether connecting to ``address`` (resolved from ``host``) is allowed (R47).

    Public addresses always are. A private one only when: ``host`` is itself a loopback
    name or literal, the address is loopback and ``ALLOW_INSECURE_LOOPBACK`` is on; or
    ``host`` is listed exactly in ``ALLOWED_PRIVATE_HOSTS``; or the address (or the IPv4
    address it embeds) lies in one of ``ALLOWED_PRIVATE_NETWORKS``.
    """
    if is_public_address(address):
        return True
    if (
        address.is_loopback
        and _is_loopback_host(host)
        and oauthconn_settings.ALLOW_INSECURE_LOOPBACK
    ):
        return True
    allowed_hosts = {h.lower().rstrip(".") for h in oauthconn_settings.ALLOWED_PRIVATE_HOSTS}
    if host.lower().rstrip(".") in allowed_hosts:
        return True
    candidates = [address, _embedded_ipv4(address)]
    return any(
        candidate in network
        for network in _allowed_networks()
        for candidate in candidates
        if candidate is not None and candidate.version == network.version
    )


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(n) for n in oauthconn_settings.ALLOWED_PRIVATE_NETWORKS]
    except (ValueError, TypeError) as err:
        raise ConfigurationError(
            "OAUTHCONN['ALLOWED_PRIVATE_NETWORKS'] must hold CIDRs like '10.1.0.0/16'."
        ) from err


def _validated_addresses(host: str, infos: Iterable[tuple[Any, ...]]) -> list[str]:
    """Check every resolved address; return them as connectable IP strings, in order."""
    addresses: list[str] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not destination_allowed(host, ip):
            # Every address, not just the first: a name answering with one public and one
            # private address would otherwise reach the private one on a retry.
            raise BlockedDestination(
                f"Refused to connect to {host}: it resolves to a private, loopback or "
                "reserved address (see OAUTHCONN['ALLOWED_PRIVATE_HOSTS']).",
                host=host,
            )
        if str(ip) not in addresses:
            addresses.append(str(ip))
    if not addresses:
        raise httpcore.ConnectError(f"{host} has no address")
    return addresses


class GuardedBackend(httpcore.NetworkBackend):
    """A sync httpcore backend that resolves once, validates, and connects to the IP."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        self.inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            # getaddrinfo has no timeout of its own; the OS resolver's applies.
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as err:
            raise httpcore.ConnectError(f"cannot resolve {host}") from err
        last_error: Exception | None = None
        for ip in _validated_addresses(host, infos):
            try:
                return self.inner.connect_tcp(ip, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as err:
                last_error = err
        assert last_error is not None
        raise last_error

    def connect_unix_socket(self, path: str, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise BlockedDestination("Unix sockets are not allowed destinations.")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class AsyncGuardedBackend(httpcore.AsyncNetworkBackend):
    """The async twin of :class:`GuardedBackend`, over anyio (asyncio or trio)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as err:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from err
        except (OSError, UnicodeError) as err:
            raise httpcore.ConnectError(f"cannot resolve {host}") from err
        last_error: Exception | None = None
        for ip in _validated_addresses(host, infos):
            try:
                return await self.inner.connect_tcp(
                    ip, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as err:
                last_error = err
        assert last_error is not None
        raise last_error

    async def connect_unix_socket(
        self, path: str, *args: Any, **kwargs: Any
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedDestination("Unix sockets are not allowed destinations.")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def _install_backend(
    transport: httpx.BaseTransport | httpx.AsyncBaseTransport,
    backend: httpcore.NetworkBackend | httpcore.AsyncNetworkBackend,
) -> None:
    # httpx 0.28 / httpcore 1.0 layout, pinned on purpose (see the module docstring).
    pool = getattr(transport, "_pool", None)
    if not isinstance(pool, httpcore.ConnectionPool | httpcore.AsyncConnectionPool) or not hasattr(
        pool, "_network_backend"
    ):
        raise RuntimeError(
            "oauthconn cannot install its SSRF guard: httpx's transport internals changed "
            f"(httpx {httpx.__version__}). Pin httpx to a supported version."
        )
    pool._network_backend = backend


class GuardedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` whose connections go through :class:`GuardedBackend`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trust_env=False, **kwargs)
        _install_backend(self, GuardedBackend())


class AsyncGuardedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connections go through :class:`AsyncGuardedBackend`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trust_env=False, **kwargs)
        _install_backend(self, AsyncGuardedBackend())


# --- client factory --------------------------------------------------------------------------


def _client_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The options shared by the sync and async clients, read from settings now."""
    forbidden = _FORBIDDEN_KWARGS.intersection(kwargs)
    if forbidden:
        raise TypeError(
            f"build_client() does not accept {sorted(forbidden)}: TLS verification, the SSRF "
            "guard and proxy settings are fixed (configure OAUTHCONN['CA_BUNDLE'] instead)."
        )
    s = oauthconn_settings
    headers = httpx.Headers({"User-Agent": s.USER_AGENT})
    headers.update(kwargs.pop("headers", None) or {})
    options: dict[str, Any] = {
        "timeout": httpx.Timeout(
            connect=s.CONNECT_TIMEOUT,
            read=s.READ_TIMEOUT,
            write=s.READ_TIMEOUT,
            pool=s.CONNECT_TIMEOUT,
        ),
        "follow_redirects": False,
        "trust_env": False,
        "headers": headers,
    }
    options.update(kwargs)
    return options


def _ssl_context() -> ssl.SSLContext | bool:
    # A context rather than verify=<path>: httpx 0.28 deprecates string paths.
    bundle = oauthconn_settings.CA_BUNDLE
    return ssl.create_default_context(cafile=str(bundle)) if bundle else True


def build_client(
    *, base_url: str = "", auth: httpx.Auth | None = None, **kwargs: Any
) -> httpx.Client:
    """Return an ``httpx.Client`` with oauthconn's hardening (R46, R47, R2).

    Timeouts from ``CONNECT_TIMEOUT`` / ``READ_TIMEOUT``, no redirects (callers may opt in
    with ``follow_redirects=True``; every hop still goes through the SSRF guard),
    ``USER_AGENT``, certificates verified against ``CA_BUNDLE`` or the default store. Other
    keyword arguments go to ``httpx.Client``; those that would weaken TLS, the guard or the
    proxy policy raise ``TypeError``.
    """
    options = _client_options(kwargs)
    transport = GuardedTransport(verify=_ssl_context())
    return httpx.Client(base_url=base_url, auth=auth, transport=transport, **options)


def build_async_client(
    *, base_url: str = "", auth: httpx.Auth | None = None, **kwargs: Any
) -> httpx.AsyncClient:
    """The async twin of :func:`build_client`, with the async SSRF guard."""
    options = _client_options(kwargs)
    transport = AsyncGuardedTransport(verify=_ssl_context())
    return httpx.AsyncClient(base_url=base_url, auth=auth, transport=transport, **options)


# --- bounded requests ------------------------------------------------------------------------


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

    ``REQUEST_DEADLINE`` bounds the whole exchange: no connect or read timeout may exceed
    the time left when the request starts, and the deadline is checked after every chunk,
    so a server dripping bytes cannot hold a worker (worst case: the deadline plus one read
    timeout). Errors become oauthconn exceptions whose messages name the host, never the
    URL's query or the body.
    """
    check_url(url)
    host = httpx.URL(url).host
    deadline = time.monotonic() + float(oauthconn_settings.REQUEST_DEADLINE)
    headers = httpx.Headers(kwargs.pop("headers", None))
    # Only codings _BoundedDecoder can cap; a server that ignores this is still handled.
    headers.setdefault("Accept-Encoding", "gzip, deflate")
    kwargs["timeout"] = _within_deadline(
        httpx.Timeout(kwargs.pop("timeout", http.timeout)), deadline
    )
    try:
        with http.stream(method, url, headers=headers, **kwargs) as response:
            content = _read_capped(response, host, deadline)
    except httpx.TimeoutException as err:
        raise ProviderTimeout(f"{host} did not answer in time.", host=host) from err
    except httpx.ConnectError as err:
        raise _connect_error(err, host) from err
    except httpx.TransportError as err:
        raise TransportError(f"The connection to {host} failed.", host=host) from err
    logger.debug(
        "%s %s%s -> %s (%d bytes)",
        method,
        host,
        httpx.URL(url).path,
        response.status_code,
        len(content),
    )
    return BoundedResponse(response.status_code, response.headers, content)


def _within_deadline(timeout: httpx.Timeout, deadline: float) -> httpx.Timeout:
    """Shrink each phase's timeout so that no single phase outlasts the overall deadline."""
    budget = max(deadline - time.monotonic(), 0.001)

    def cut(value: float | None) -> float:
        return budget if value is None else min(value, budget)

    return httpx.Timeout(
        connect=cut(timeout.connect),
        read=cut(timeout.read),
        write=cut(timeout.write),
        pool=cut(timeout.pool),
    )


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


def _read_capped(response: httpx.Response, host: str, deadline: float) -> bytes:
    """Read the raw stream, decode it under the size cap, and watch the deadline."""
    cap = int(oauthconn_settings.MAX_RESPONSE_BYTES)
    decoder = _BoundedDecoder(response.headers.get("Content-Encoding", ""), cap, host)
    # iter_raw, not iter_bytes: httpx would inflate a whole chunk before we could count it,
    # so a small gzip bomb could take far more memory than the cap.
    for chunk in response.iter_raw():
        decoder.feed(chunk)
        if time.monotonic() > deadline:
            raise ProviderTimeout(f"{host} did not finish its response in time.", host=host)
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

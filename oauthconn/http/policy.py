"""URL and destination policy for every server-side request (SECURITY R1, R47, §3.5)."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import BlockedDestination, ConfigurationError, InsecureURL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# is_global misses these on Python 3.11: 192.0.0.0/24 holds a few "global" anycast
# addresses, but SECURITY §3.5 blocks the whole block.
_EXTRA_BLOCKED = (ipaddress.ip_network("192.0.0.0/24"),)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


# --- URL policy ------------------------------------------------------------------------------


def check_url(url: str, *, field: str = "URL") -> httpx.URL:
    """Raise :class:`InsecureURL` unless ``url`` may be used for a server-side request; the
    URL as parsed, so a caller that sends it need not parse it again.

    https only; http just for a loopback host (127.0.0.0/8, ::1, ``localhost``) while
    ``ALLOW_INSECURE_LOOPBACK`` is on (SECURITY R1, §3.5). No userinfo (it would be sent as
    credentials to whoever the host is) and no fragment (RFC 6749 §3.1, §3.2).
    """
    try:
        parsed = _parsed(url)
    except (httpx.InvalidURL, TypeError) as err:
        raise InsecureURL(f"{field} is not a valid URL.") from err
    if not parsed.host:
        raise InsecureURL(f"{field} must be an absolute URL with a host.")
    if parsed.userinfo:
        raise InsecureURL(f"{field} must not contain a user name or password.")
    if "#" in url:
        raise InsecureURL(f"{field} must not contain a fragment (#...).")
    if parsed.scheme == "https":
        return parsed
    if parsed.scheme == "http" and is_loopback_host(parsed.host):
        if oauthconn_settings.ALLOW_INSECURE_LOOPBACK:
            return parsed
        raise InsecureURL(
            f"{field} uses http: allowed for loopback only with "
            "OAUTHCONN['ALLOW_INSECURE_LOOPBACK'] = True (development)."
        )
    raise InsecureURL(f"{field} must use https.")


@functools.lru_cache(maxsize=1024)
def _parsed(url: str) -> httpx.URL:
    """``url`` parsed, kept for the next request to the same URL: parsing was a few percent
    of a proactive renewal's CPU (httpx.URL is immutable, so sharing it is safe; a URL that
    fails to parse raises again each time, as nothing is cached for it)."""
    return httpx.URL(url)


@functools.lru_cache(maxsize=256)
def is_loopback_host(host: str) -> bool:
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
        and is_loopback_host(host)
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


def validated_addresses(host: str, port: int, infos: Iterable[tuple[Any, ...]]) -> list[str]:
    """Check every resolved address and the port; return connectable IP strings, in order."""
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
        if is_public_address(ip) and port not in oauthconn_settings.ALLOWED_PORTS:
            # Explicitly allowed private destinations may use any port; public ones only
            # the listed ones, so an admin-entered URL cannot probe arbitrary services.
            raise BlockedDestination(
                f"Refused to connect to {host} on port {port} (see OAUTHCONN['ALLOWED_PORTS']).",
                host=host,
            )
        if str(ip) not in addresses:
            addresses.append(str(ip))
    if not addresses:
        raise httpcore.ConnectError(f"{host} has no address")
    return addresses

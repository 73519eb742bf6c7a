"""oauthconn.http: URL policy, the SSRF guard, the client factory and bounded reads.

No test sends traffic anywhere but 127.0.0.1: for private and link-local destinations the
guard must refuse before connecting, and ``no_connect`` makes any attempt fail the test.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import socket
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from ipaddress import ip_address

import httpcore
import httpx
import pytest

from oauthconn import http as oauth_http
from oauthconn.exceptions import (
    BlockedDestination,
    ConfigurationError,
    InsecureURL,
    ProviderTimeout,
    ResponseTooLarge,
    TLSVerificationFailed,
    TransportError,
)
from oauthconn.http import (
    AsyncGuardedBackend,
    BoundedResponse,
    GuardedBackend,
    build_async_client,
    build_client,
    check_url,
    destination_allowed,
    is_public_address,
    parse_retry_after,
    send,
)
from tests.scripted_server import Reply, ScriptedServer, make_test_ca


@pytest.fixture
def configure(settings):
    """Set OAUTHCONN keys for one test (a new dict, so nothing leaks between tests)."""

    def apply(**values):
        settings.OAUTHCONN = {**settings.OAUTHCONN, **values}

    return apply


@pytest.fixture
def no_connect(monkeypatch):
    """Fail the test if anything opens a TCP connection."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a connection was attempted: {args!r}")

    monkeypatch.setattr(socket, "create_connection", refuse)


def fake_dns(monkeypatch, answers: dict[str, list[str]]) -> None:
    """Resolve the given names to the given addresses; others as usual."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port),
                )
                for a in answers[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# --- check_url -------------------------------------------------------------------------------


def test_check_url_accepts_https():
    check_url("https://as.example/token?tenant=1")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/t", "http://localhost/t", "http://[::1]/t"])
def test_check_url_allows_http_loopback_only_with_the_switch(configure, url):
    configure(ALLOW_INSECURE_LOOPBACK=True)
    check_url(url)
    configure(ALLOW_INSECURE_LOOPBACK=False)
    with pytest.raises(InsecureURL, match="ALLOW_INSECURE_LOOPBACK"):
        check_url(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://as.example/token", "must use https"),
        ("http://10.0.0.5/token", "must use https"),
        ("ftp://as.example/token", "must use https"),
        ("https://user:pw@as.example/token", "user name or password"),
        ("https://as.example/token#frag", "fragment"),
        ("https://as.example/token#", "fragment"),
        ("/token", "absolute URL"),
        ("https:///token", "absolute URL"),
    ],
)
def test_check_url_rejects(configure, url, reason):
    configure(ALLOW_INSECURE_LOOPBACK=True)  # even with the development switch on
    with pytest.raises(InsecureURL, match=reason) as caught:
        check_url(url, field="Token endpoint")
    assert str(caught.value).startswith("Token endpoint")


# --- the address policy ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "10.0.0.5", "172.16.0.1", "192.168.1.1", "169.254.169.254",
        "100.64.0.1", "0.0.0.0", "192.0.0.9", "192.0.2.1", "198.18.0.1", "224.0.0.1",
        "240.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
        "2001:db8::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
        "64:ff9b::a00:5", "64:ff9b::7f00:1", "2002:7f00:1::1", "2002:a00:5::1", "64:ff9b:1::1",
    ],
)  # fmt: skip
def test_non_public_addresses_are_recognised(address):
    assert not is_public_address(ip_address(address))


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_are_recognised(address):
    assert is_public_address(ip_address(address))


def test_loopback_exception_needs_a_loopback_host_and_the_switch(configure):
    loopback = ip_address("127.0.0.1")
    configure(ALLOW_INSECURE_LOOPBACK=True)
    assert destination_allowed("localhost", loopback)
    assert destination_allowed("127.0.0.1", loopback)
    # A public-looking name that resolves to loopback is DNS rebinding, not development.
    assert not destination_allowed("as.example", loopback)
    assert not destination_allowed("::ffff:127.0.0.1", ip_address("::ffff:127.0.0.1"))
    configure(ALLOW_INSECURE_LOOPBACK=False)
    assert not destination_allowed("localhost", loopback)


def test_allowed_private_hosts_match_exact_names(configure):
    configure(ALLOW_INSECURE_LOOPBACK=False, ALLOWED_PRIVATE_HOSTS=["idp.intranet.example"])
    private = ip_address("10.0.0.5")
    assert destination_allowed("idp.intranet.example", private)
    assert destination_allowed("IDP.intranet.example", private)
    assert not destination_allowed("evil.idp.intranet.example", private)
    assert not destination_allowed("intranet.example", private)


def test_allowed_private_networks(configure):
    configure(ALLOWED_PRIVATE_NETWORKS=["10.1.0.0/16", "fd00::/8"])
    assert destination_allowed("idp", ip_address("10.1.2.3"))
    assert destination_allowed("idp", ip_address("::ffff:10.1.2.3"))
    assert destination_allowed("idp", ip_address("fd00::5"))
    assert not destination_allowed("idp", ip_address("10.2.0.1"))
    configure(ALLOWED_PRIVATE_NETWORKS=["not a network"])
    with pytest.raises(ConfigurationError, match="ALLOWED_PRIVATE_NETWORKS"):
        destination_allowed("idp", ip_address("10.1.2.3"))


# --- the guard on real connections -----------------------------------------------------------


def test_guard_refuses_loopback_before_connecting(configure, scripted_server):
    scripted_server.default("/", Reply(body=b"ok"))
    configure(ALLOW_INSECURE_LOOPBACK=False)
    with build_client() as client, pytest.raises(BlockedDestination):
        client.get(scripted_server.url("/"))
    assert scripted_server.requests == []

    configure(ALLOW_INSECURE_LOOPBACK=True)
    with build_client() as client:
        assert client.get(scripted_server.url("/")).status_code == 200
    assert len(scripted_server.requests) == 1


PRIVATE_URLS = [
    "https://10.0.0.5/token",
    "https://169.254.169.254/latest/meta-data/",
    "https://[::ffff:127.0.0.1]/token",
    "https://[::ffff:a9fe:a9fe]/token",
    "https://0x7f.1/token",
]


@pytest.mark.parametrize("url", ["https://127.0.0.1/token", "https://[::1]/token", *PRIVATE_URLS])
def test_send_refuses_private_destinations(configure, no_connect, url):
    configure(ALLOW_INSECURE_LOOPBACK=False)
    with build_client() as client, pytest.raises(BlockedDestination) as caught:
        send(client, "POST", url, data={"client_secret": "s3cr3t"})
    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize("url", PRIVATE_URLS)
def test_loopback_switch_does_not_open_other_private_destinations(configure, no_connect, url):
    configure(ALLOW_INSECURE_LOOPBACK=True)
    with build_client() as client, pytest.raises(BlockedDestination):
        send(client, "GET", url)


def test_guard_checks_resolved_addresses_of_names(configure, monkeypatch, no_connect):
    configure(ALLOW_INSECURE_LOOPBACK=False)
    fake_dns(monkeypatch, {"as.example": ["10.0.0.5"], "mixed.example": ["8.8.8.8", "10.0.0.5"]})
    with build_client() as client:
        for host in ("as.example", "mixed.example"):
            with pytest.raises(BlockedDestination, match=host):
                send(client, "GET", f"https://{host}/token")


def test_guard_allows_public_hosts_only_on_allowed_ports(configure, monkeypatch, no_connect):
    configure(ALLOW_INSECURE_LOOPBACK=False)
    fake_dns(monkeypatch, {"as.example": ["8.8.8.8"]})
    with build_client() as client:
        with pytest.raises(BlockedDestination, match="port 8443"):
            send(client, "GET", "https://as.example:8443/token")
        configure(ALLOW_INSECURE_LOOPBACK=False, ALLOWED_PORTS=[443, 8443])
        # allowed now: the guard lets it through to the connect (which no_connect stops)
        with pytest.raises(AssertionError, match="a connection was attempted"):
            send(client, "GET", "https://as.example:8443/token")


def test_guard_connects_to_the_address_it_validated(configure, monkeypatch, scripted_server):
    """Resolve once: a rebinding resolver answering differently the second time is not asked."""
    scripted_server.default("/", Reply(body=b"ok"))
    configure(ALLOW_INSECURE_LOOPBACK=False, ALLOWED_PRIVATE_HOSTS=["idp.test"])
    answers = iter([["127.0.0.1"], ["169.254.169.254"]])
    real = socket.getaddrinfo

    def rebinding(host, port, *args, **kwargs):
        if host == "idp.test":
            (address,) = next(answers)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with build_client() as client:
        response = client.get(f"http://idp.test:{scripted_server.port}/")
    assert response.status_code == 200
    assert scripted_server.requests[0].headers["host"] == f"idp.test:{scripted_server.port}"


def test_allowed_private_hosts_let_localhost_through(configure, scripted_server):
    scripted_server.default("/", Reply(body=b"ok"))
    configure(ALLOW_INSECURE_LOOPBACK=False)
    url = scripted_server.url("/", host="localhost")
    with build_client() as client, pytest.raises(BlockedDestination):
        client.get(url)
    configure(ALLOW_INSECURE_LOOPBACK=False, ALLOWED_PRIVATE_HOSTS=["localhost"])
    with build_client() as client:
        assert client.get(url).status_code == 200


def test_allowed_private_networks_let_an_address_through(configure, scripted_server):
    scripted_server.default("/", Reply(body=b"ok"))
    configure(ALLOW_INSECURE_LOOPBACK=False, ALLOWED_PRIVATE_NETWORKS=["127.0.0.0/8"])
    with build_client() as client:
        assert client.get(scripted_server.url("/")).status_code == 200


def test_async_client_is_guarded_too(configure, scripted_server):
    scripted_server.default("/", Reply(body=b"ok"))

    async def fetch():
        async with build_async_client() as client:
            return await client.get(scripted_server.url("/"))

    configure(ALLOW_INSECURE_LOOPBACK=False)
    with pytest.raises(BlockedDestination):
        asyncio.run(fetch())
    assert scripted_server.requests == []
    configure(ALLOW_INSECURE_LOOPBACK=True)
    assert asyncio.run(fetch()).status_code == 200


def test_guard_is_installed_where_httpx_keeps_the_backend():
    """Pins the httpx 0.28 internals the guard relies on; an upgrade that moves them fails."""
    with build_client() as client:
        assert isinstance(client._transport._pool._network_backend, GuardedBackend)
    client = build_async_client()
    assert isinstance(client._transport._pool._network_backend, AsyncGuardedBackend)
    asyncio.run(client.aclose())


def test_installing_into_an_unknown_transport_layout_fails_loudly():
    class Moved(httpx.BaseTransport):
        pass

    with pytest.raises(RuntimeError, match="SSRF guard"):
        oauth_http.guard._install_backend(Moved(), GuardedBackend())


def test_environment_proxies_are_ignored(monkeypatch, scripted_server):
    # A proxy would connect on our behalf, out of the guard's sight.
    scripted_server.default("/", Reply(body=b"direct"))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with build_client() as client:
        assert client.get(scripted_server.url("/")).content == b"direct"


# --- the client factory ----------------------------------------------------------------------


def test_build_client_applies_settings(configure):
    configure(CONNECT_TIMEOUT=1.5, READ_TIMEOUT=2.5, USER_AGENT="probe/1")
    with build_client(headers={"X-Extra": "1"}) as client:
        assert client.timeout == httpx.Timeout(connect=1.5, read=2.5, write=2.5, pool=1.5)
        assert client.follow_redirects is False
        assert client.trust_env is False
        assert client.headers["User-Agent"] == "probe/1"
        assert client.headers["X-Extra"] == "1"


@pytest.mark.parametrize("option", ["verify", "transport", "mounts", "proxy", "trust_env"])
def test_build_client_refuses_options_that_weaken_it(option):
    with pytest.raises(TypeError, match=option):
        build_client(**{option: False})


# --- send: bounded reads, timeouts, errors ---------------------------------------------------


def test_send_returns_a_bounded_response(scripted_server):
    scripted_server.default("/t", Reply(body={"ok": True}))
    with build_client() as client:
        response = send(client, "GET", scripted_server.url("/t"))
    assert isinstance(response, BoundedResponse)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == b'{"ok": true}'
    assert "true" not in repr(response)


def test_send_checks_the_url_first(no_connect):
    with build_client() as client, pytest.raises(InsecureURL):
        send(client, "GET", "http://as.example/token")


def test_send_does_not_follow_redirects(scripted_server):
    scripted_server.default(
        "/t", Reply(status=307, headers={"Location": scripted_server.url("/x")})
    )
    with build_client() as client:
        assert send(client, "POST", scripted_server.url("/t")).status_code == 307
    assert scripted_server.requests_to("/x") == []


def test_endless_body_stops_at_the_cap(configure, scripted_server):
    configure(MAX_RESPONSE_BYTES=200_000)
    scripted_server.default("/t", Reply(chunks=itertools.repeat(b"x" * 65536)))
    started = time.monotonic()
    with build_client() as client, pytest.raises(ResponseTooLarge):
        send(client, "GET", scripted_server.url("/t"))
    assert time.monotonic() - started < 2


def test_body_at_the_cap_is_accepted(configure, scripted_server):
    configure(MAX_RESPONSE_BYTES=1000)
    scripted_server.default("/t", Reply(body=b"y" * 1000))
    with build_client() as client:
        assert len(send(client, "GET", scripted_server.url("/t")).content) == 1000


def test_gzip_is_decoded_and_capped_on_decoded_size(configure, scripted_server):
    configure(MAX_RESPONSE_BYTES=100_000)
    small = gzip.compress(b'{"access_token": "a"}')
    bomb = gzip.compress(b"\0" * 20_000_000)  # ~20 KB on the wire
    scripted_server.add("/t", Reply(headers={"Content-Encoding": "gzip"}, body=small))
    scripted_server.add("/t", Reply(headers={"Content-Encoding": "gzip"}, body=bomb))
    with build_client() as client:
        assert send(client, "GET", scripted_server.url("/t")).content == b'{"access_token": "a"}'
        with pytest.raises(ResponseTooLarge):
            send(client, "GET", scripted_server.url("/t"))
    assert scripted_server.requests[0].headers["accept-encoding"] == "gzip, deflate"


def test_decompression_memory_stays_near_the_cap():
    """A 20 MB gzip bomb in one network chunk never inflates past the cap in memory."""
    bomb = gzip.compress(b"\0" * 20_000_000)
    decoder = oauth_http.bounded._BoundedDecoder("gzip", 100_000, "as.example")
    tracemalloc.start()
    try:
        with pytest.raises(ResponseTooLarge):
            decoder.feed(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000


def test_unknown_content_encoding_is_an_error(scripted_server):
    scripted_server.default("/t", Reply(headers={"Content-Encoding": "br"}, body=b"\x0b\x00"))
    with build_client() as client, pytest.raises(TransportError, match="Content-Encoding"):
        send(client, "GET", scripted_server.url("/t"))


def test_silent_server_hits_the_read_timeout(configure, scripted_server):
    configure(READ_TIMEOUT=0.2)
    scripted_server.default("/t", Reply(body=b"late", delay=3))
    started = time.monotonic()
    with build_client() as client, pytest.raises(ProviderTimeout, match="127.0.0.1"):
        send(client, "GET", scripted_server.url("/t"))
    assert time.monotonic() - started < 1.5


def test_dripping_server_hits_the_overall_deadline(configure, scripted_server):
    configure(READ_TIMEOUT=1.0, REQUEST_DEADLINE=0.5)
    scripted_server.default("/t", Reply(chunks=itertools.repeat(b"x", 60), chunk_delay=0.05))
    started = time.monotonic()
    with build_client() as client, pytest.raises(ProviderTimeout):
        send(client, "GET", scripted_server.url("/t"))
    assert time.monotonic() - started < 1.5


def test_deadline_also_bounds_the_wait_for_headers(configure, scripted_server):
    configure(READ_TIMEOUT=10.0, REQUEST_DEADLINE=0.3)
    scripted_server.default("/t", Reply(body=b"late", delay=3))
    started = time.monotonic()
    with build_client() as client, pytest.raises(ProviderTimeout):
        send(client, "GET", scripted_server.url("/t"))
    assert time.monotonic() - started < 1.5


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_connection_refused_is_a_transport_error():
    url = f"http://127.0.0.1:{unused_port()}/token?secret=xyz"
    with build_client() as client, pytest.raises(TransportError) as caught:
        send(client, "POST", url)
    assert type(caught.value) is TransportError
    assert "Cannot reach 127.0.0.1" in str(caught.value)
    assert "xyz" not in str(caught.value)


def test_unresolvable_host_is_a_transport_error(monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with build_client() as client, pytest.raises(TransportError, match="Cannot reach as.example"):
        send(client, "GET", "https://as.example/token")


def test_unix_sockets_are_refused():
    with pytest.raises(BlockedDestination):
        GuardedBackend().connect_unix_socket("/tmp/x.sock")
    with pytest.raises(BlockedDestination):
        asyncio.run(AsyncGuardedBackend().connect_unix_socket("/tmp/x.sock"))


# --- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return make_test_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(tls_files):
    _, cert, key = tls_files
    with ScriptedServer(tls=(cert, key)) as server:
        server.default("/t", Reply(body={"ok": True}))
        yield server


def test_untrusted_certificate_fails_tls_verification(tls_server):
    with build_client() as client, pytest.raises(TLSVerificationFailed, match="CA_BUNDLE"):
        send(client, "GET", tls_server.url("/t"))


def test_ca_bundle_makes_a_private_ca_trusted(configure, tls_server, tls_files):
    configure(CA_BUNDLE=str(tls_files[0]))
    with build_client() as client:
        assert send(client, "GET", tls_server.url("/t")).status_code == 200


def test_https_to_an_allowed_private_host(configure, tls_server, tls_files):
    configure(CA_BUNDLE=str(tls_files[0]), ALLOW_INSECURE_LOOPBACK=False)
    url = tls_server.url("/t", host="localhost")
    with build_client() as client, pytest.raises(BlockedDestination):
        send(client, "GET", url)
    configure(
        CA_BUNDLE=str(tls_files[0]),
        ALLOW_INSECURE_LOOPBACK=False,
        ALLOWED_PRIVATE_HOSTS=["localhost"],
    )
    with build_client() as client:
        assert send(client, "GET", url).status_code == 200
    assert len(tls_server.requests) == 1


# --- Retry-After -----------------------------------------------------------------------------


def test_parse_retry_after():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120
    assert parse_retry_after("99999999999", now=now) == 3600
    assert (
        parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now=now) == 90
    )
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now=now) == 0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("-5", now=now) is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("", now=now) is None


def test_guarded_backend_raises_connect_error_for_empty_answers(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [])
    with pytest.raises(httpcore.ConnectError):
        GuardedBackend().connect_tcp("as.example", 443)

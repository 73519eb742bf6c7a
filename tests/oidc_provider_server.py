"""A strict real OpenID provider for the tests: panva's ``oidc-provider`` in a Node process.

``tests/oidc_provider/server.js`` runs it on 127.0.0.1 with rotating refresh tokens (a replayed
one revokes the grant), client authentication only by the registered method, ``iss`` in every
authorization response (RFC 9207), 5-second access tokens, PKCE S256 required for public
clients, introspection and revocation. One process serves the whole test session; it exits
when its stdin closes, so it also ends when pytest dies. Its clients are registered once, here
(:data:`CLIENTS`), each with a callback URI for every slug in :data:`SLUGS`.

The browser's leg is plain HTTP: :meth:`OidcServer.sign_in` follows the provider's redirects
and posts its login and consent forms, as a person would, and returns the query of the final
redirect back to oauthconn. ``node_modules`` is installed by ``./scripts/test`` (``npm ci``);
without it the tests fail, they are not skipped.
"""

from __future__ import annotations

import json
import os
import secrets
import selectors
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

HERE = Path(__file__).resolve().parent / "oidc_provider"
READY_TIMEOUT = 30.0
#: connection slugs the tests use: every client registers a callback URI for each
SLUGS = (
    "strict-public",
    "strict-basic",
    "strict-post",
    "basic-as-post",
    "post-as-basic",
    "rotation",
    "replay",
    "disconnect",
    "storm",
    "per-user",
)
#: the registered clients: id -> registered token endpoint auth method and grant types
CLIENTS = {
    "strict-public": ("none", ["authorization_code", "refresh_token"]),
    "strict-basic": ("client_secret_basic", ["authorization_code", "refresh_token"]),
    "strict-post": ("client_secret_post", ["authorization_code", "refresh_token"]),
    "machine-basic": ("client_secret_basic", ["client_credentials"]),
    "machine-post": ("client_secret_post", ["client_credentials"]),
}


def client_registrations(
    secret_of: dict[str, str],
    clients: dict[str, tuple[str, list[str]]] | None = None,
    slugs: tuple[str, ...] = SLUGS,
    **extra: Any,
) -> list[dict[str, Any]]:
    """oidc-provider's static ``clients`` (OpenID Connect Dynamic Client Registration §2);
    ``extra`` goes into every registration."""
    registrations = []
    for client_id, (method, grant_types) in (clients or CLIENTS).items():
        browser = "authorization_code" in grant_types
        registration: dict[str, Any] = {
            "client_id": client_id,
            "token_endpoint_auth_method": method,
            "grant_types": grant_types,
            "response_types": ["code"] if browser else [],
            "redirect_uris": [callback_uri(slug) for slug in slugs] if browser else [],
            "scope": "openid offline_access profile email read write",
            **extra,
        }
        if method != "none":
            registration["client_secret"] = secret_of[client_id]
        registrations.append(registration)
    return registrations


def callback_uri(slug: str) -> str:
    # REDIRECT_BASE_URL of tests/settings.py: oauthconn's callback as the test client serves it
    return f"http://testserver/oauthconn/callback/{slug}/"


class _Forms(HTMLParser):
    """The first form of a page: its action and its inputs' names and values."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = attributes.get("action") or ""
        elif tag == "input" and attributes.get("name"):
            self.fields.setdefault(attributes["name"] or "", attributes.get("value") or "")


@dataclass
class OidcServer:
    """The running provider: its issuer, its clients' secrets, its event log, a browser."""

    issuer: str
    secrets: dict[str, str]

    def events(self) -> dict[str, int]:
        """What the provider emitted since the last reset, counted by event[:grant_type[:error]]."""
        response = httpx.get(f"{self.issuer}/_test/events", timeout=5)
        response.raise_for_status()
        return response.json()["counts"]

    def refreshes(self) -> int:
        return self.events().get("grant.success:refresh_token", 0)

    def reset(self) -> None:
        httpx.post(f"{self.issuer}/_test/reset", timeout=5).raise_for_status()

    def introspect(self, token: str, client_id: str = "strict-basic") -> dict[str, Any]:
        """RFC 7662 at the provider, as a resource server would ask it."""
        response = httpx.post(
            f"{self.issuer}/token/introspection",
            data={"token": token},
            auth=(client_id, self.secrets[client_id]),
            timeout=5,
        )
        response.raise_for_status()
        return response.json()

    def sign_in(self, authorize_url: str, login: str = "alice") -> dict[str, list[str]]:
        """The person at the provider: sign in as ``login``, consent; return the query of the
        redirect back to oauthconn (not followed: the test hands it to the callback)."""
        with httpx.Client(timeout=10) as browser:
            response = browser.get(authorize_url)
            for _ in range(10):
                if response.is_redirect:
                    location = urljoin(str(response.url), response.headers["location"])
                    if not location.startswith(self.issuer):
                        return parse_qs(urlsplit(location).query)
                    response = browser.get(location)
                else:
                    response = self._submit(browser, response, login)
        raise AssertionError(f"no redirect back from the provider: {response.text[:500]}")

    @staticmethod
    def _submit(browser: httpx.Client, page: httpx.Response, login: str) -> httpx.Response:
        assert page.status_code == 200, page.text[:1000]
        form = _Forms()
        form.feed(page.text)
        assert form.action is not None, page.text[:1000]
        fields = {**form.fields, "login": login, "password": "any"}
        if fields.get("prompt") != "login":
            fields = {"prompt": fields["prompt"]}
        return browser.post(urljoin(str(page.url), form.action), data=fields)


def _start(
    log_file,
    clients: dict[str, tuple[str, list[str]]] = CLIENTS,
    slugs: tuple[str, ...] = SLUGS,
    registered: dict[str, Any] | None = None,
    **config: Any,
) -> tuple[subprocess.Popen, OidcServer]:
    """Start server.js for ``clients`` (``registered``: more metadata for each of them);
    ``config``: more of server.js's OIDC_TEST_CONFIG (e.g. ``dpop``)."""
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(
            "The strict OpenID provider is not installed: run `npm ci --prefix tests/oidc_provider`"
            " (./scripts/test does it), with Node.js 20.19 or later.",
            pytrace=False,
        )
    client_secrets = {client_id: secrets.token_urlsafe(24) for client_id in clients}
    config["clients"] = client_registrations(client_secrets, clients, slugs, **(registered or {}))
    process = subprocess.Popen(
        [node, str(HERE / "server.js"), "0"],
        cwd=HERE,
        env={**os.environ, "OIDC_TEST_CONFIG": json.dumps(config)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
    )
    line = _ready_line(process)
    if not line.startswith("ready "):
        process.kill()
        log_file.seek(0)
        pytest.fail(f"oidc-provider did not start ({line!r}): {log_file.read()[-2000:]}")
    return process, OidcServer(issuer=line.split()[1], secrets=client_secrets)


def _ready_line(process: subprocess.Popen) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=READY_TIMEOUT):
            return "(no answer in time)"
    return process.stdout.readline().strip()


@pytest.fixture(scope="session")
def oidc_server_process() -> Iterator[OidcServer]:
    """The provider process, one per test session."""
    with tempfile.TemporaryFile("w+") as log_file:
        process, server = _start(log_file)
        try:
            yield server
        finally:
            _stop(process)


def _stop(process: subprocess.Popen) -> None:
    process.stdin.close()  # server.js exits when its stdin closes
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def oidc_server(oidc_server_process: OidcServer) -> OidcServer:
    """The provider with its event log emptied for this test."""
    oidc_server_process.reset()
    return oidc_server_process


# --- DPoP (RFC 9449): a second instance, its own clients, tokens bound to a proof's key ------

#: connection slugs the DPoP tests use
DPOP_SLUGS = ("dpop", "dpop-public", "dpop-nonce", "dpop-off")
#: clients that must send a DPoP proof to the token endpoint (dpop_bound_access_tokens)
DPOP_CLIENTS = {
    "dpop-public": ("none", ["authorization_code", "refresh_token"]),
    "dpop-basic": ("client_secret_basic", ["authorization_code", "refresh_token"]),
    "dpop-machine": ("client_secret_basic", ["client_credentials"]),
}


@pytest.fixture(scope="session")
def dpop_server_process() -> Iterator[OidcServer]:
    """oidc-provider with DPoP enabled (``features.dPoP``), one per test session."""
    with tempfile.TemporaryFile("w+") as log_file:
        process, server = _start(
            log_file,
            DPOP_CLIENTS,
            DPOP_SLUGS,
            registered={"dpop_bound_access_tokens": True},
            dpop={"requireNonce": False},
        )
        try:
            yield server
        finally:
            _stop(process)


@pytest.fixture
def dpop_server(dpop_server_process: OidcServer) -> Iterator[OidcServer]:
    """The DPoP provider, its event log emptied, nonces not required (see require_dpop_nonce)."""
    dpop_server_process.reset()
    require_dpop_nonce(dpop_server_process, False)
    yield dpop_server_process
    require_dpop_nonce(dpop_server_process, False)


def require_dpop_nonce(server: OidcServer, required: bool) -> None:
    """Make the provider demand a server nonce in every proof (RFC 9449 §8, §9), or not."""
    response = httpx.post(
        f"{server.issuer}/_test/dpop-nonce", params={"required": int(required)}, timeout=5
    )
    response.raise_for_status()

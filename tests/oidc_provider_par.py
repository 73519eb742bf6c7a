"""A second strict oidc-provider for issue 13: pushed authorization requests required (RFC 9126).

The same ``tests/oidc_provider/server.js`` as :mod:`tests.oidc_provider_server`, started with
its own configuration (``config.par``), so the shared instance's defaults stay as they are.
Its clients are registered here, with callback URIs for :data:`PAR_SLUGS`; ``par-short``
gets a one-second ``request_uri`` lifetime (``ttl.PushedAuthorizationRequest``) so a test can
see one expire.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.oidc_provider_server import HERE, OidcServer, _ready_line, callback_uri
from tests.resource_server import ResourceServer, serve

PAR_SLUGS = ("par-basic", "par-public", "par-short", "par-post", "par-wizard")
#: client id -> registered token endpoint auth method
PAR_CLIENTS = {
    "par-basic": "client_secret_basic",
    "par-post": "client_secret_post",
    "par-public": "none",
    "par-short": "client_secret_basic",
}
SHORT_LIVED = {"par-short": 1}


def par_config(client_secrets: dict[str, str]) -> dict[str, Any]:
    clients = []
    for client_id, method in PAR_CLIENTS.items():
        client: dict[str, Any] = {
            "client_id": client_id,
            "token_endpoint_auth_method": method,
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "redirect_uris": [callback_uri(slug) for slug in PAR_SLUGS],
            "scope": "openid offline_access profile email read write",
        }
        if method != "none":
            client["client_secret"] = client_secrets[client_id]
        clients.append(client)
    par = {"required": True, "allowUnregisteredRedirectUris": True, "ttl": SHORT_LIVED}
    return {"clients": clients, "par": par}


def launch(config: dict[str, Any], log_file) -> subprocess.Popen:
    """Start server.js with ``config``; return the process once it printed its issuer."""
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(
            "The strict OpenID provider is not installed: run `npm ci --prefix "
            "tests/oidc_provider`.",
            pytrace=False,
        )
    return subprocess.Popen(
        [node, str(HERE / "server.js"), "0"],
        cwd=HERE,
        env={**os.environ, "OIDC_TEST_CONFIG": json.dumps(config)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
    )


def running(config: dict[str, Any], client_secrets: dict[str, str]) -> Iterator[OidcServer]:
    """The provider for the duration of the generator; it exits when its stdin closes."""
    with tempfile.TemporaryFile("w+") as log_file:
        process = launch(config, log_file)
        line = _ready_line(process)
        if not line.startswith("ready "):
            process.kill()
            log_file.seek(0)
            pytest.fail(f"oidc-provider did not start ({line!r}): {log_file.read()[-2000:]}")
        try:
            yield OidcServer(issuer=line.split()[1], secrets=client_secrets)
        finally:
            process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def par_server_process() -> Iterator[OidcServer]:
    client_secrets = {c: secrets.token_urlsafe(24) for c, m in PAR_CLIENTS.items() if m != "none"}
    yield from running(par_config(client_secrets), client_secrets)


@pytest.fixture
def par_server(par_server_process: OidcServer) -> OidcServer:
    """The PAR-requiring provider with its event log emptied for this test."""
    par_server_process.reset()
    return par_server_process


# --- dynamic registration and resource indicators (RFC 7591/7592, RFC 8707, RFC 9728) -------


@pytest.fixture(scope="session")
def resource_server_process() -> Iterator[ResourceServer]:
    yield from serve()


@pytest.fixture(scope="session")
def registration_server_process(resource_server_process: ResourceServer) -> Iterator[OidcServer]:
    """A third oidc-provider: open dynamic registration with management, and the test
    resource server (tests/resource_server.py) as the one resource it issues JWTs for."""
    config = {
        "clients": [],
        "registration": {"initialAccessToken": False},
        "resourceIndicators": {"resource": resource_server_process.resource, "scope": "read write"},
    }
    for server in running(config, {}):
        resource_server_process.issuer = server.issuer
        yield server


@pytest.fixture
def registration_server(registration_server_process: OidcServer) -> OidcServer:
    registration_server_process.reset()
    return registration_server_process


@pytest.fixture
def resource_server(
    resource_server_process: ResourceServer, registration_server: OidcServer
) -> ResourceServer:
    """The API, publishing its metadata; hostile documents added by a test are dropped."""
    resource_server_process.reset()
    return resource_server_process

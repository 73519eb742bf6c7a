"""Fixtures: the demo authorization server (django-oauth-toolkit) served over real HTTP by
``live_server``, closure factories for providers and connections, and the browser's leg of the
authorization code flow driven with Django's test client."""

from __future__ import annotations

import os
import secrets
from importlib.metadata import entry_points
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection as db_connection
from django.urls import reverse
from oauth2_provider.models import Application

from oauthconn.models import ClientAuthMethod, Connection, GrantType, Provider
from tests.recorder import AS_LOG

pytest_plugins = [
    "tests.scripted_server",
    "tests.authlib_server",
    "tests.oidc_provider_server",
    "tests.oidc_provider_par",
]
# The test kit's plugin (oauthconn_provider). An install of oauthconn whose metadata has the
# pytest11 entry point has loaded it already, and registering it twice is an error.
if not any(ep.value == "oauthconn.testing.pytest_plugin" for ep in entry_points(group="pytest11")):
    pytest_plugins.append("oauthconn.testing.pytest_plugin")


def pytest_collection_modifyitems(config, items):
    """Cross-process concurrency tests need PostgreSQL: deselected (not skipped) elsewhere."""
    on_postgres = os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql"))
    if on_postgres:
        return
    selected = [item for item in items if "postgres" not in item.keywords]
    deselected = [item for item in items if "postgres" in item.keywords]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


@pytest.fixture(autouse=True)
def _caches_start_cold():
    """Each test starts with the caches of a new process. The first lookup is a first one: on
    PostgreSQL a row kept from another test's (since flushed) database would make it a lookup
    after a change, which costs a second statement (see test_client_pool for that case). No
    provider's signing keys or DPoP nonces are kept: each test's provider has its own."""
    from oauthconn.flows import dpop, lookup
    from oauthconn.oauth import jwks

    lookup._rows.clear()
    jwks.clear_cache()
    dpop.NONCES.clear()


@pytest.fixture
def as_log():
    AS_LOG.clear()
    yield AS_LOG
    AS_LOG.clear()


@pytest.fixture
def provider(live_server, transactional_db) -> Provider:
    """The demo authorization server, reached over real HTTP."""
    base = live_server.url
    return Provider.objects.create(
        slug="dot",
        name="Test authorization server",
        authorization_endpoint=f"{base}/demo-oauth/authorize/",
        token_endpoint=f"{base}/demo-oauth/token/",
        revocation_endpoint=f"{base}/demo-oauth/revoke_token/",
    )


@pytest.fixture
def make_connection(provider, live_server):
    """Create a connection and its client registration at the authorization server."""

    def make(
        slug: str = "crm",
        *,
        grant_type: str = GrantType.AUTHORIZATION_CODE_PKCE,
        auth_method: str = ClientAuthMethod.CLIENT_SECRET_BASIC,
        per_user: bool = False,
        scopes: str = "read write",
        provider_: Provider | None = None,
        **fields,
    ) -> Connection:
        public = auth_method == ClientAuthMethod.NONE
        secret = "" if public else "s3cr:t/" + secrets.token_urlsafe(16)
        connection = Connection.objects.create(
            slug=slug,
            name=slug.title(),
            provider=provider_ or provider,
            grant_type=grant_type,
            client_id=f"client-{slug}",
            client_secret=secret,
            client_auth_method=auth_method,
            scopes=scopes,
            per_user=per_user,
            api_base_url=f"{live_server.url}/demo-api/",
            **fields,
        )
        Application.objects.create(
            name=slug,
            client_id=connection.client_id,
            client_secret=secret,
            client_type=Application.CLIENT_PUBLIC if public else Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=(
                Application.GRANT_CLIENT_CREDENTIALS
                if grant_type == GrantType.CLIENT_CREDENTIALS
                else Application.GRANT_AUTHORIZATION_CODE
            ),
            redirect_uris=connection.redirect_uri,
            skip_authorization=True,
            algorithm="",
        )
        return connection

    return make


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("staff", "staff@example.com", "pw")


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def start(client, connection: Connection, **data) -> str:
    """POST the start view; return the authorization URL the browser is sent to."""
    response = client.post(reverse("oauthconn:start", args=[connection.slug]), data)
    assert response.status_code == 302, response
    return response["Location"]


def consent(client, authorize_url: str) -> dict[str, list[str]]:
    """The user at the provider: open the authorization URL (already consented, so the
    provider redirects straight back); return the query of the redirect back to us."""
    parts = urlsplit(authorize_url)
    response = client.get(parts.path, parse_qs(parts.query))
    assert response.status_code == 302, getattr(response, "content", b"")[:500]
    return parse_qs(urlsplit(response["Location"]).query)


def deliver(client, connection: Connection, query: dict):
    """The browser arriving at our callback with the provider's query."""
    return client.get(reverse("oauthconn:callback", args=[connection.slug]), query)


def outcome(client, response):
    """Follow the callback's 303 (its only answer) to the page that shows the result."""
    assert response.status_code == 303, response
    assert "code=" not in response["Location"] and "state=" not in response["Location"]
    return client.get(response["Location"])


def authorize(client, connection: Connection):
    """The whole browser leg: start, consent at the provider, callback."""
    return deliver(client, connection, consent(client, start(client, connection)))


@pytest.fixture
def on_postgres() -> bool:
    return db_connection.vendor == "postgresql"


@pytest.fixture
def unused_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

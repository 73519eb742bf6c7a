"""Discovery from django-oauth-toolkit's two documents, over real HTTP (defect 9b).

DOT with OIDC on serves ``/.well-known/openid-configuration`` and, under its ``demo-oauth/``
prefix, ``/.well-known/oauth-authorization-server``; only the latter names its revocation
endpoint. A provider discovered from DOT's issuer must have it, so disconnect revokes there.
"""

from __future__ import annotations

import pytest
from oauth2_provider.models import AccessToken, Application, RefreshToken

from oauthconn.flows.discovery import discover_provider
from oauthconn.flows.revocation import disconnect
from oauthconn.models import Provider, Token, TokenStatus
from tests.conftest import authorize


@pytest.fixture
def issuer(live_server) -> str:
    return f"{live_server.url}/demo-oauth"


@pytest.fixture
def discovered(issuer, transactional_db) -> Provider:
    return Provider.objects.create(slug="dot-both", name="DOT", **discover_provider(issuer))


def test_discovery_takes_the_revocation_endpoint_from_the_rfc8414_document(discovered, issuer):
    assert discovered.revocation_endpoint == f"{issuer}/revoke_token/"
    # ...and still what only the OpenID document names.
    assert discovered.userinfo_endpoint == f"{issuer}/userinfo/"
    assert discovered.jwks_uri == f"{issuer}/.well-known/jwks.json"
    # DOT lists its grant types only in the RFC 8414 document.
    assert "client_credentials" in discovered.supported_grant_types


def test_disconnect_revokes_at_the_discovered_endpoint(
    staff_client, make_connection, discovered, as_log
):
    connection = make_connection("both", provider_=discovered)
    assert authorize(staff_client, connection).status_code == 303
    application = Application.objects.get(client_id=connection.client_id)
    assert AccessToken.objects.filter(application=application).count() == 1

    result = disconnect(Token.objects.get(connection=connection))

    assert result.revoked_at_provider is True, result.message
    assert len(as_log.to("/demo-oauth/revoke_token/")) == 2
    assert not AccessToken.objects.filter(application=application).exists()
    assert RefreshToken.objects.get(application=application).revoked is not None
    assert Token.objects.get(connection=connection).status == TokenStatus.REVOKED

"""private_key_jwt (RFC 7523) against a real Authlib authorization server over real HTTP.

The server verifies our assertions with the public keys it fetches from our JWKS view,
served by ``live_server``; nothing is mocked. Pure checks of the assertion's claims and of key
rollover are at the end.
"""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from django.urls import reverse
from django.utils import timezone

from oauthconn import flows
from oauthconn.exceptions import ConfigurationError, ReauthorizationRequired
from oauthconn.flows.common import credentials_for
from oauthconn.flows.keys import ROLLOVER_DAYS, generate_key_pair, public_jwks, rotate_key
from oauthconn.models import ClientAuthMethod, Connection, GrantType, Provider, Token
from oauthconn.oauth.assertion import ASSERTION_TYPE, client_assertion
from oauthconn.oauth.client_auth import apply_client_auth
from tests.authlib_server import AuthlibServer, Client


@pytest.fixture
def pkj_connection(authlib_server, live_server, transactional_db) -> Connection:
    issuer = authlib_server.issuer
    provider = Provider.objects.create(
        slug="authlib",
        name="Authlib AS",
        issuer=issuer,
        token_endpoint=f"{issuer}/token",
        revocation_endpoint=f"{issuer}/revoke",
    )
    connection = Connection.objects.create(
        slug="machine",
        name="Machine",
        provider=provider,
        grant_type=GrantType.CLIENT_CREDENTIALS,
        client_id="machine-client",
        client_auth_method=ClientAuthMethod.PRIVATE_KEY_JWT,
        scopes="read",
    )
    rotate_key(connection)
    jwks_url = live_server.url + reverse("oauthconn:jwks", args=[connection.slug])
    authlib_server.clients["machine-client"] = Client("machine-client", jwks_url)
    return connection


def sent_assertion(server: AuthlibServer, index: int = -1) -> dict:
    form = server.received[index]
    assert form["client_assertion_type"] == ASSERTION_TYPE
    return jwt.decode(form["client_assertion"], options={"verify_signature": False})


def test_client_credentials_with_private_key_jwt(pkj_connection, authlib_server):
    token = flows.get_valid_token(pkj_connection)

    assert token.access_token.reveal() == authlib_server.issued[0]["access_token"]
    claims = sent_assertion(authlib_server)
    assert claims["iss"] == claims["sub"] == "machine-client"
    assert claims["aud"] == authlib_server.issuer  # one string: the issuer (R49)
    assert 0 < claims["exp"] - claims["iat"] <= 60
    assert "client_secret" not in authlib_server.received[0]


def test_each_request_has_a_new_jti(pkj_connection, authlib_server):
    flows.get_valid_token(pkj_connection)
    flows.get_valid_token(pkj_connection, force=True)

    assert len(authlib_server.issued) == 2
    assert sent_assertion(authlib_server, 0)["jti"] != sent_assertion(authlib_server, 1)["jti"]


def test_revocation_uses_the_same_authentication(pkj_connection, authlib_server):
    token = flows.get_valid_token(pkj_connection)

    result = flows.disconnect(token)

    assert result.revoked_at_provider is True
    assert authlib_server.received[-1]["token"] == token.access_token.reveal()
    assert sent_assertion(authlib_server)["aud"] == authlib_server.issuer


def test_after_rotation_the_new_key_signs_and_the_old_one_stays_published(
    pkj_connection, authlib_server, client
):
    old_kid = pkj_connection.private_key_id
    new_kid = rotate_key(pkj_connection, "EC")

    flows.get_valid_token(pkj_connection)

    header = jwt.get_unverified_header(authlib_server.received[-1]["client_assertion"])
    assert header == {"alg": "ES256", "kid": new_kid, "typ": "JWT"}
    served = client.get(reverse("oauthconn:jwks", args=[pkj_connection.slug])).json()
    assert [k["kid"] for k in served["keys"]] == [new_kid, old_kid]


def test_a_key_the_server_does_not_know_is_refused(pkj_connection, authlib_server):
    # The connection signs with a key that is not the one published at its JWKS URL.
    pem, _ = generate_key_pair()
    Connection.objects.filter(pk=pkj_connection.pk).update(private_key=pem)
    pkj_connection.refresh_from_db()

    with pytest.raises(ReauthorizationRequired, match="invalid_client"):
        flows.get_valid_token(pkj_connection)
    assert authlib_server.issued == []
    assert Token.objects.get(connection=pkj_connection).access_token is None


# --- the JWKS view -----------------------------------------------------------------------


def test_jwks_view_serves_public_keys_only(pkj_connection, client):
    response = client.get(reverse("oauthconn:jwks", args=[pkj_connection.slug]))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/jwk-set+json"
    (key,) = response.json()["keys"]
    assert key["kid"] == pkj_connection.private_key_id
    assert {"d", "p", "q", "dp", "dq", "qi"}.isdisjoint(key)
    assert b"PRIVATE" not in response.content


def test_jwks_view_is_404_without_keys(make_connection, client):
    connection = make_connection("plain")
    assert client.get(reverse("oauthconn:jwks", args=[connection.slug])).status_code == 404
    assert client.get(reverse("oauthconn:jwks", args=["nope"])).status_code == 404


# --- pure pieces -------------------------------------------------------------------------


def test_retired_keys_leave_the_jwks_after_the_rollover_period(pkj_connection):
    first = pkj_connection.private_key_id
    second = rotate_key(pkj_connection)
    later = timezone.now() + timedelta(days=ROLLOVER_DAYS, seconds=1)

    assert [k["kid"] for k in public_jwks(pkj_connection)["keys"]] == [second, first]
    assert [k["kid"] for k in public_jwks(pkj_connection, now=later)["keys"]] == [second]
    third = rotate_key(pkj_connection, now=later)
    pkj_connection.refresh_from_db()
    assert [k["kid"] for k in pkj_connection.published_jwks] == [third, second]


def test_private_key_is_stored_encrypted(pkj_connection):
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute(
            "SELECT private_key FROM oauthconn_connection WHERE id = %s", [pkj_connection.pk]
        )
        (stored,) = cursor.fetchone()
    assert "PRIVATE KEY" not in stored
    assert "PRIVATE KEY" in pkj_connection.private_key.reveal()


def test_audience_is_the_token_endpoint_when_the_provider_has_no_issuer(pkj_connection):
    Provider.objects.filter(pk=pkj_connection.provider_id).update(issuer="")
    pkj_connection.refresh_from_db()
    data, headers = {}, {}

    apply_client_auth(
        credentials_for(pkj_connection), data, headers, endpoint="https://as.example/token"
    )

    claims = jwt.decode(data["client_assertion"], options={"verify_signature": False})
    assert claims["aud"] == "https://as.example/token"
    assert headers == {}


def test_private_key_jwt_without_a_key_is_a_configuration_error(pkj_connection):
    Connection.objects.filter(pk=pkj_connection.pk).update(private_key=None)
    pkj_connection.refresh_from_db()
    with pytest.raises(ConfigurationError, match="needs a key pair"):
        apply_client_auth(credentials_for(pkj_connection), {}, {}, endpoint="https://x/token")


def test_assertion_signature_verifies_with_the_published_key():
    pem, public = generate_key_pair("RSA")
    token = client_assertion(
        client_id="c", audience="https://as.example", private_key_pem=pem, key_id=public["kid"]
    )
    key = jwt.PyJWK(public).key
    claims = jwt.decode(token, key, algorithms=["RS256"], audience="https://as.example")
    assert claims["iss"] == "c"


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: ed25519.Ed25519PrivateKey.generate(),
        lambda: ec.generate_private_key(ec.SECP384R1()),
    ],
    ids=["ed25519", "ec-p384"],
)
def test_a_key_without_a_common_jws_algorithm_is_a_configuration_error(make_key):
    pem = (
        make_key()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(ConfigurationError, match="must be RSA or EC P-256"):
        client_assertion(
            client_id="c", audience="https://as.example", private_key_pem=pem, key_id="k"
        )

"""DPoP against a strict real peer: oidc-provider with DPoP required (RFC 9449; R50, R52-R54).

The provider (tests/oidc_provider_server.py, ``dpop_server``) registers its clients with
``dpop_bound_access_tokens``: a token request without a proof is refused, tokens are bound to
the proof's key (``cnf.jkt``), and its userinfo endpoint, the protected resource here, accepts
a bound token only as ``Authorization: DPoP`` with a valid proof of that key (``ath``,
``htm``, ``htu``, a ``jti`` it has not seen). Its nonce mode can be turned on while it runs.
"""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import jwt
import pytest
from django.db import connection as db_connection
from django.utils import timezone

from oauthconn import get_connection
from oauthconn.exceptions import DPoPNonceRejected, InvalidProviderResponse
from oauthconn.flows import dpop as dpop_flows
from oauthconn.flows.discovery import discover_provider
from oauthconn.flows.revocation import disconnect
from oauthconn.flows.tokens import renew_now
from oauthconn.models import Connection, EventKind, GrantType, Provider, Token
from oauthconn.oauth import dpop
from tests.conftest import deliver, start
from tests.oidc_provider_server import DPOP_CLIENTS, OidcServer, require_dpop_nonce
from tests.scripted_server import Reply

pytestmark = [pytest.mark.strict_peer, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def dpop_provider(dpop_server: OidcServer, transactional_db) -> Provider:
    fields = discover_provider(dpop_server.issuer)
    return Provider.objects.create(slug="dpop-peer", name="oidc-provider (DPoP)", **fields)


@pytest.fixture
def make_dpop(dpop_provider: Provider, dpop_server: OidcServer):
    def make(slug: str = "dpop", client_id: str = "dpop-basic", **fields) -> Connection:
        method, grant_types = DPOP_CLIENTS[client_id]
        machine = grant_types == ["client_credentials"]
        if machine:
            grant_type = GrantType.CLIENT_CREDENTIALS
        elif method == "none":
            grant_type = GrantType.AUTHORIZATION_CODE_PKCE
        else:
            grant_type = GrantType.AUTHORIZATION_CODE
        fields.setdefault("use_dpop", True)
        return Connection.objects.create(
            slug=slug,
            name=slug.title(),
            provider=dpop_provider,
            client_id=client_id,
            client_secret=dpop_server.secrets.get(client_id, ""),
            client_auth_method=method,
            grant_type=grant_type,
            scopes="read" if machine else "openid offline_access profile",
            extra_authorize_params={} if machine else {"prompt": "consent"},
            api_base_url=dpop_server.issuer + "/",
            **fields,
        )

    return make


def authorize(client, connection: Connection, server: OidcServer):
    response = deliver(client, connection, server.sign_in(start(client, connection)))
    assert response.status_code == 303, response.content[:500]
    return Token.objects.get(connection=connection)


def stored_key(token: Token) -> dpop.DPoPKey:
    token.refresh_from_db()
    return dpop_flows.stored_key(token)


# --- the happy path: code, resource, refresh -------------------------------------------------


def test_metadata_advertises_dpop_and_the_connection_offers_it(dpop_provider):
    assert "ES256" in dpop_provider.dpop_signing_algs


@pytest.mark.parametrize("client_id", ["dpop-basic", "dpop-public"])
def test_code_refresh_and_resource_with_dpop_required(
    staff_client, make_dpop, dpop_server, client_id
):
    connection = make_dpop(
        slug="dpop" if client_id == "dpop-basic" else "dpop-public", client_id=client_id
    )
    token = authorize(staff_client, connection, dpop_server)
    assert token.token_type == "DPoP"
    key = stored_key(token)
    introspected = dpop_server.introspect(token.access_token.reveal(), *_introspector(dpop_server))
    assert introspected["active"] and introspected["token_type"] == "DPoP"
    assert introspected["cnf"] == {"jkt": key.thumbprint()}

    crm = get_connection(connection.slug)
    me = crm.get("me")
    assert me.status_code == 200, me.text
    assert me.json()["sub"] == "alice"
    assert me.request.headers["authorization"].startswith("DPoP ")

    first_access = token.access_token.reveal()
    renewal = renew_now(connection)
    assert renewal.renewed
    token.refresh_from_db()
    assert token.token_type == "DPoP" and token.access_token.reveal() != first_access
    assert stored_key(token).thumbprint() == key.thumbprint()  # R53: the same key
    assert dpop_server.refreshes() == 1
    assert get_connection(connection.slug).get("me").status_code == 200


def _introspector(server: OidcServer) -> tuple[str]:
    # oidc-provider lets a client introspect its own tokens; the confidential one does
    return ("dpop-basic",)


def test_every_resource_call_sends_a_new_proof_bound_to_the_token(
    staff_client, make_dpop, dpop_server
):
    connection = make_dpop()
    token = authorize(staff_client, connection, dpop_server)
    key = stored_key(token)
    seen = []
    with get_connection("dpop").client(event_hooks={"request": [seen.append]}) as http:
        for _ in range(3):
            assert http.get("me", params={"x": "1"}).status_code == 200
    proofs = [_verified(request.headers["dpop"], key) for request in seen]
    assert len({p["jti"] for p in proofs}) == 3  # the provider refuses a replayed jti
    access_token = Token.objects.get().access_token.reveal()
    for proof in proofs:
        assert proof["htm"] == "GET" and proof["htu"] == dpop_server.issuer + "/me"
        assert proof["ath"] == dpop.access_token_hash(access_token)


def _verified(proof: str, key: dpop.DPoPKey) -> dict:
    header = jwt.get_unverified_header(proof)
    assert header["jwk"] == key.public_jwk()
    return jwt.decode(proof, jwt.PyJWK(header["jwk"], algorithm="ES256").key, algorithms=["ES256"])


# --- a stolen token is useless ---------------------------------------------------------------


def test_the_access_token_alone_is_refused_by_the_resource(staff_client, make_dpop, dpop_server):
    connection = make_dpop()
    token = authorize(staff_client, connection, dpop_server)
    access_token = token.access_token.reveal()
    url = dpop_server.issuer + "/me"

    as_bearer = httpx.get(url, headers={"Authorization": f"Bearer {access_token}"})
    assert as_bearer.status_code == 401

    thief = dpop.make_key()  # a proof, but of another key than the token is bound to
    proof = thief.proof("GET", url, access_token=access_token)
    with_other_key = httpx.get(
        url, headers={"Authorization": f"DPoP {access_token}", "DPoP": proof}
    )
    assert with_other_key.status_code == 401

    without_proof = httpx.get(url, headers={"Authorization": f"DPoP {access_token}"})
    assert without_proof.status_code in (400, 401)

    assert get_connection("dpop").get("me").status_code == 200  # the holder of the key: fine


def test_a_replayed_proof_is_refused(staff_client, make_dpop, dpop_server):
    connection = make_dpop()
    token = authorize(staff_client, connection, dpop_server)
    access_token = token.access_token.reveal()
    url = dpop_server.issuer + "/me"
    proof = stored_key(token).proof("GET", url, access_token=access_token)
    headers = {"Authorization": f"DPoP {access_token}", "DPoP": proof}
    assert httpx.get(url, headers=headers).status_code == 200
    assert httpx.get(url, headers=headers).status_code == 401


# --- nonces (RFC 9449 §8, §9) ----------------------------------------------------------------


def test_nonce_mode_at_the_token_endpoint_and_the_resource(staff_client, make_dpop, dpop_server):
    require_dpop_nonce(dpop_server, True)
    connection = make_dpop(slug="dpop-nonce")
    token = authorize(staff_client, connection, dpop_server)  # code exchange: retried once
    assert token.token_type == "DPoP"
    events = dpop_server.events()
    assert events.get("grant.error:authorization_code:use_dpop_nonce") == 1
    assert events.get("grant.success:authorization_code") == 1

    assert "userinfo not used" not in str(connection.events.values_list("message", flat=True))

    dpop_flows.NONCES.clear()  # as in another process: the resource's nonce is not known
    dpop_server.reset()
    seen = []
    hooks = {"request": [lambda request: seen.append(request.headers["dpop"])]}
    with get_connection("dpop-nonce").client(event_hooks=hooks) as http:
        assert http.get("me").status_code == 200
        assert http.get("me").status_code == 200
    # the first call was refused for want of a nonce and sent again with the one it got;
    # the second used that nonce at once
    nonces = [jwt.decode(proof, options={"verify_signature": False}).get("nonce") for proof in seen]
    assert nonces[0] is None and nonces[1] and nonces[2] and len(nonces) == 3
    assert dpop_server.refreshes() == 0  # answered with the nonce, not by a new token

    assert renew_now(connection).renewed  # refresh: the token endpoint's nonce is known


def test_the_async_client_answers_the_resource_nonce_too(staff_client, make_dpop, dpop_server):
    connection = make_dpop(slug="dpop-nonce")
    authorize(staff_client, connection, dpop_server)
    require_dpop_nonce(dpop_server, True)
    dpop_flows.NONCES.clear()
    crm = get_connection("dpop-nonce")
    proofs: list[str] = []

    async def call():
        async def keep(request):
            proofs.append(request.headers["dpop"])

        async with crm.async_client(event_hooks={"request": [keep]}) as http:
            return (await http.get("me")).json()

    dpop_server.reset()
    assert asyncio.run(call())["sub"] == "alice"
    nonces = [jwt.decode(p, options={"verify_signature": False}).get("nonce") for p in proofs]
    assert len(nonces) == 2 and nonces[0] is None and nonces[1]
    assert dpop_server.refreshes() == 0  # answered with the nonce, not by a new token


def test_disconnect_revokes_and_forgets_the_key(staff_client, make_dpop, dpop_server):
    connection = make_dpop()
    token = authorize(staff_client, connection, dpop_server)
    access_token = token.access_token.reveal()
    result = disconnect(token)
    assert result.revoked_at_provider
    token.refresh_from_db()
    assert token.dpop_key is None and token.access_token is None
    assert dpop_server.introspect(access_token, "dpop-basic")["active"] is False


def test_a_wrong_nonce_is_answered_with_the_right_one(staff_client, make_dpop, dpop_server):
    connection = make_dpop(slug="dpop-nonce")
    authorize(staff_client, connection, dpop_server)
    require_dpop_nonce(dpop_server, True)
    issuer = dpop_server.issuer
    dpop_flows.NONCES[dpop.origin(issuer)] = "not-a-nonce-this-server-made"
    assert get_connection("dpop-nonce").get("me").status_code == 200
    assert renew_now(connection).renewed
    assert dpop_flows.NONCES[dpop.origin(issuer)] != "not-a-nonce-this-server-made"


def test_a_resource_that_refuses_its_own_nonce_again_raises_a_typed_error(
    staff_client, make_dpop, dpop_server, scripted_server
):
    connection = make_dpop()
    authorize(staff_client, connection, dpop_server)
    challenge = {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "again"}
    scripted_server.default("/me", Reply(status=401, headers=challenge, body={}))
    Connection.objects.filter(pk=connection.pk).update(api_base_url=scripted_server.url("/"))
    with pytest.raises(DPoPNonceRejected):
        get_connection("dpop").get("me")
    assert len(scripted_server.requests) == 2
    assert Token.objects.get().token_type == "DPoP"  # nothing refreshed, nothing lost


# --- what is refused -------------------------------------------------------------------------


def test_without_dpop_the_provider_refuses_and_nothing_is_stored(
    staff_client, make_dpop, dpop_server
):
    connection = make_dpop(slug="dpop-off", use_dpop=False)
    response = deliver(
        staff_client, connection, dpop_server.sign_in(start(staff_client, connection))
    )
    assert response.status_code == 303
    token = Token.objects.filter(connection=connection).first()
    assert token is None or token.access_token is None
    assert connection.events.filter(kind=EventKind.AUTHORIZATION_FAILED).exists()


def test_a_bearer_answer_to_a_dpop_request_is_refused(scripted_server, transactional_db):
    from oauthconn.flows.tokens import get_valid_token

    scripted_server.default(
        "/token", Reply(body={"access_token": "AT", "token_type": "Bearer", "expires_in": 60})
    )
    provider = Provider.objects.create(
        slug="downgrade", name="Downgrade", token_endpoint=scripted_server.url("/token")
    )
    connection = Connection.objects.create(
        slug="downgrade",
        name="D",
        provider=provider,
        client_id="c",
        client_secret="s",
        grant_type=GrantType.CLIENT_CREDENTIALS,
        use_dpop=True,
    )
    with pytest.raises(Exception) as caught:
        get_valid_token(connection)
    assert isinstance(caught.value.__cause__, InvalidProviderResponse)
    assert "Bearer token although" in str(caught.value)
    assert "dpop" in scripted_server.requests[0].headers
    token = Token.objects.get()
    assert token.access_token is None and token.dpop_key is None


# --- client credentials ----------------------------------------------------------------------


def test_client_credentials_with_dpop(make_dpop, dpop_server):
    connection = make_dpop(slug="dpop", client_id="dpop-machine")
    access_token = get_connection("dpop").access_token
    token = Token.objects.get(connection=connection)
    assert token.token_type == "DPoP"
    introspected = dpop_server.introspect(access_token, "dpop-machine")
    assert introspected["active"] and introspected["cnf"] == {"jkt": stored_key(token).thumbprint()}
    first_key = stored_key(token).thumbprint()
    assert renew_now(connection).renewed
    assert stored_key(token).thumbprint() == first_key


# --- the key is a secret (R54) ---------------------------------------------------------------


def test_the_key_is_encrypted_at_rest_and_never_shown(
    staff_client, make_dpop, dpop_server, caplog, admin_client
):
    caplog.set_level(logging.DEBUG)
    connection = make_dpop()
    token = authorize(staff_client, connection, dpop_server)
    get_connection("dpop").get("me")
    renew_now(connection)
    token.refresh_from_db()
    private = json.loads(token.dpop_key.reveal())["jwk"]
    secret_d = private["d"]
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT dpop_key FROM oauthconn_token WHERE id = %s", [token.pk])
        raw = cursor.fetchone()[0]
    assert secret_d not in raw and '"kty"' not in raw and "ES256" not in raw

    pages = [
        admin_client.get(f"/admin/oauthconn/connection/{connection.pk}/change/"),
        admin_client.get("/admin/oauthconn/token/"),
        admin_client.get(f"/admin/oauthconn/token/{token.pk}/change/"),
        admin_client.get("/admin/oauthconn/event/"),
        admin_client.get(f"/api/oauthconn/connections/{connection.pk}/"),
        admin_client.get("/api/oauthconn/connections/"),
    ]
    for page in pages:
        assert page.status_code == 200, page
        assert secret_d.encode() not in page.content
    for record in caplog.records:
        assert secret_d not in record.getMessage()
    assert timezone.now()  # the life cycle above ran with every logger at DEBUG


# --- the wizard, the admin page and the API (issue 13 part 4) --------------------------------

WIZARD = "/admin/oauthconn/connection/add/"


def wizard_step(client, step_name: str, **fields):
    data = {"connection_wizard-current_step": step_name}
    data.update({f"{step_name}-{key}": value for key, value in fields.items()})
    return client.post(WIZARD, data)


def client_fields(issuer: str, **more) -> dict:
    return {
        "client_id": "dpop-basic",
        "client_secret": "not-checked-here",
        "client_auth_method": "client_secret_basic",
        "authorization_endpoint": f"{issuer}/auth",
        "token_endpoint": f"{issuer}/token",
        "revocation_endpoint": "",
        "userinfo_endpoint": "",
        "scopes": "openid",
        "extra_authorize_params": "{}",
        "extra_token_params": "{}",
        "api_base_url": f"{issuer}/",
        "test_path": "me",
        **more,
    }


def test_the_wizard_offers_dpop_when_discovery_lists_it_and_the_review_says_so(
    staff_client, dpop_server
):
    assert staff_client.get(WIZARD).status_code == 200
    basics = {"name": "Bound", "slug": "dpop", "sharing": "shared", "source": "issuer"}
    wizard_step(staff_client, "basics", **basics, issuer=dpop_server.issuer)
    response = wizard_step(staff_client, "grant", grant_type=GrantType.AUTHORIZATION_CODE)
    form = response.context["wizard"]["form"]
    assert "use_dpop" in form.fields and "RFC 9449" in form.fields["use_dpop"].help_text
    response = wizard_step(
        staff_client, "client", **client_fields(dpop_server.issuer, use_dpop="on")
    )
    assert response.context["wizard"]["steps"].current == "review"
    assert b"Bound with DPoP (RFC 9449)" in response.content
    response = wizard_step(staff_client, "review")
    assert response.status_code == 302  # "Save and authorize": off to the provider
    connection = Connection.objects.get(slug="dpop")
    assert connection.use_dpop
    page = staff_client.get(f"/admin/oauthconn/connection/{connection.pk}/change/")
    assert b"Tokens bound with DPoP" in page.content


def test_the_wizard_does_not_offer_dpop_when_the_provider_does_not_list_it(staff_client, db):
    provider = Provider.objects.create(
        slug="plain",
        name="Plain",
        authorization_endpoint="https://as.example/a",
        token_endpoint="https://as.example/t",
    )
    assert staff_client.get(WIZARD).status_code == 200
    basics = {"name": "Plain", "slug": "plain", "sharing": "shared", "source": "existing"}
    wizard_step(staff_client, "basics", **basics, existing_provider=provider.pk)
    response = wizard_step(staff_client, "grant", grant_type=GrantType.AUTHORIZATION_CODE)
    assert "use_dpop" not in response.context["wizard"]["form"].fields
    wizard_step(staff_client, "client", **client_fields("https://as.example", use_dpop="on"))
    response = wizard_step(staff_client, "review")
    assert not Connection.objects.get(slug="plain").use_dpop  # not offered, not taken


def test_the_api_reads_and_writes_the_setting_and_shows_the_token_type(
    staff_client, make_dpop, dpop_server, admin_client
):
    connection = make_dpop(use_dpop=False, slug="dpop-off")
    url = f"/api/oauthconn/connections/{connection.pk}/"
    assert admin_client.get(url).json()["use_dpop"] is False
    response = admin_client.patch(url, {"use_dpop": True}, content_type="application/json")
    assert response.status_code == 200 and response.json()["use_dpop"] is True
    connection.refresh_from_db()
    authorize(staff_client, connection, dpop_server)
    body = admin_client.get(url).json()
    assert body["token"]["token_type"] == "DPoP"
    assert "dpop_key" not in json.dumps(body)
    page = admin_client.get(f"/admin/oauthconn/connection/{connection.pk}/change/")
    assert b"DPoP-bound (sender-constrained)" in page.content

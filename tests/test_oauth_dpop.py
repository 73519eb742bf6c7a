"""DPoP as protocol (oauthconn.oauth.dpop, token requests; SECURITY R50, R52, R53).

Proofs are checked the way a server checks them (RFC 9449 §4.3): the signature against the
``jwk`` the proof carries, then the claims. Token requests run over real HTTP against the
scripted server, whose replies are those RFC 9449 §8 shows.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

import jwt
import pytest

from oauthconn.exceptions import (
    ConfigurationError,
    DPoPNonceRejected,
    DPoPProofRejected,
    InvalidProviderResponse,
)
from oauthconn.http import build_client
from oauthconn.oauth import dpop
from oauthconn.oauth.assertion import ASSERTION_TYPE
from oauthconn.oauth.client_auth import ClientCredentials
from oauthconn.oauth.token import (
    client_credentials_grant,
    exchange_code,
    refresh_token_grant,
)
from oauthconn.oauth.token_response import parse_token_response
from tests.scripted_server import Reply

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BASIC = ClientCredentials("client-1", "s3cret", "client_secret_basic")
DPOP_TOKENS = {"access_token": "AT", "token_type": "DPoP", "expires_in": 60, "refresh_token": "RT"}
NONCE_ERROR = {
    "error": "use_dpop_nonce",
    "error_description": "Authorization server requires nonce",
}


def verified(proof: str) -> tuple[dict, dict]:
    """(header, claims) of a proof, verified with the public key it embeds (RFC 9449 §4.3)."""
    header = jwt.get_unverified_header(proof)
    key = jwt.PyJWK(header["jwk"], algorithm=header["alg"])
    claims = jwt.decode(proof, key.key, algorithms=[header["alg"]])
    return header, claims


def b64_sha256(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- proofs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", dpop.PREFERRED_ALGS)
def test_a_proof_is_signed_by_the_key_it_names_and_carries_no_private_part(alg):
    key = dpop.make_key(alg)
    header, claims = verified(key.proof("post", "https://as.example/token", now=NOW))
    assert header["typ"] == "dpop+jwt" and header["alg"] == alg
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(header["jwk"])
    assert claims["htm"] == "POST" and claims["htu"] == "https://as.example/token"
    assert claims["iat"] == int(NOW.timestamp())
    assert "ath" not in claims and "nonce" not in claims


def test_htu_drops_query_and_fragment_and_ath_hashes_the_token():
    key = dpop.make_key()
    proof = key.proof("GET", "https://api.example/v1/me?x=1&y=2#frag", access_token="tok-123")
    claims = verified(proof)[1]
    assert claims["htu"] == "https://api.example/v1/me"
    assert claims["ath"] == b64_sha256("tok-123")


def test_every_proof_has_its_own_jti():
    key = dpop.make_key()
    jtis = {verified(key.proof("GET", "https://api.example/"))[1]["jti"] for _ in range(50)}
    assert len(jtis) == 50


def test_the_nonce_a_server_sent_goes_into_the_next_proof_to_that_server_only():
    binding = dpop.DPoP(dpop.make_key())
    binding.remember("https://as.example/token", {"DPoP-Nonce": "eyJ7S_zG.eyJH0-Z.HX4w-7v"})
    assert verified(binding.proof("POST", "https://as.example/other"))[1]["nonce"] == (
        "eyJ7S_zG.eyJH0-Z.HX4w-7v"
    )
    assert "nonce" not in verified(binding.proof("GET", "https://api.example/"))[1]


def test_a_key_survives_storage_and_its_thumbprint_is_rfc7638():
    key = dpop.make_key()
    again = dpop.DPoPKey.from_json(key.to_json())
    public = key.public_jwk()
    canonical = json.dumps(
        {name: public[name] for name in ("crv", "kty", "x", "y")}, separators=(",", ":")
    )
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest())
    assert again.thumbprint() == key.thumbprint() == expected.rstrip(b"=").decode()
    assert key.private_jwk not in repr(key) and '"d"' not in repr(key)


@pytest.mark.parametrize("stored", ["", "{}", '{"alg": "ES256", "jwk": {"kty": "EC"}}', "x"])
def test_an_unusable_stored_key_is_a_configuration_error(stored):
    with pytest.raises(ConfigurationError, match="DPoP key is not usable"):
        dpop.DPoPKey.from_json(stored)


@pytest.mark.parametrize(
    ("supported", "chosen"),
    [(None, "ES256"), ([], "ES256"), (["RS256", "ES256"], "ES256"), (["EdDSA", "RS256"], "EdDSA")],
)
def test_es256_unless_the_server_lists_only_others(supported, chosen):
    assert dpop.choose_algorithm(supported) == chosen


def test_a_server_with_no_algorithm_we_sign_with_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="ES512"):
        dpop.choose_algorithm(["ES512"])


# --- nonces and challenges (RFC 9449 §8, §9) -------------------------------------------------


@pytest.mark.parametrize(
    ("challenge", "error"),
    [
        (
            'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce"',
            "use_dpop_nonce",
        ),
        ('Bearer realm="x", DPoP algs="ES256 PS256", error="use_dpop_nonce"', "use_dpop_nonce"),
        ('DPoP algs="ES256", Bearer error="invalid_token"', None),
        ('Bearer error="use_dpop_nonce"', None),
        ("dpop error=invalid_token", "invalid_token"),
    ],
)
def test_the_error_of_a_dpop_challenge_only(challenge, error):
    assert dpop.challenge_error({"WWW-Authenticate": challenge}) == error


def test_a_nonce_challenge_needs_the_error_and_a_well_formed_nonce():
    asked = {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "n-1"}
    assert dpop.nonce_challenge(401, asked) == "n-1"
    assert dpop.nonce_challenge(400, {"DPoP-Nonce": "n-2"}, "use_dpop_nonce") == "n-2"
    assert dpop.nonce_challenge(400, {"DPoP-Nonce": "n-2"}, "invalid_grant") is None
    assert dpop.nonce_challenge(401, {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"'}) is None
    assert dpop.nonce_challenge(401, {**asked, "DPoP-Nonce": 'bad"nonce'}) is None
    assert dpop.nonce_challenge(200, asked) is None


# --- token responses (R50, R53, catalogue T10) -----------------------------------------------


def parse(body: dict, *, with_proof: bool):
    return parse_token_response(
        200,
        {"Content-Type": "application/json"},
        json.dumps(body).encode(),
        sent_at=NOW,
        default_lifetime=None,
        max_lifetime=3600,
        dpop=with_proof,
    )


def test_a_dpop_token_is_accepted_for_a_request_with_a_proof():
    assert parse(DPOP_TOKENS, with_proof=True).token_type == "DPoP"


def test_a_dpop_token_without_a_proof_is_refused():
    with pytest.raises(InvalidProviderResponse, match="Unsupported token type 'DPoP'"):
        parse(DPOP_TOKENS, with_proof=False)


def test_a_bearer_token_for_a_request_with_a_proof_is_refused_and_its_refresh_token_kept():
    with pytest.raises(InvalidProviderResponse, match="Bearer token although") as caught:
        parse({**DPOP_TOKENS, "token_type": "Bearer"}, with_proof=True)
    assert caught.value.salvaged_refresh_token == "RT"


# --- token requests over HTTP ----------------------------------------------------------------


@pytest.fixture
def http():
    with build_client() as client:
        yield client


def proofs(server) -> list[dict]:
    return [verified(request.headers["dpop"])[1] for request in server.requests]


def test_every_grant_sends_a_proof_and_keeps_the_key_with_the_tokens(http, scripted_server):
    scripted_server.default("/token", Reply(body=DPOP_TOKENS))
    url = scripted_server.url("/token")
    binding = dpop.DPoP(dpop.make_key())
    common = dict(credentials=BASIC, dpop=binding)
    results = [
        exchange_code(
            http, url, code="c", redirect_uri="https://s/cb", code_verifier=None, **common
        ),
        refresh_token_grant(http, url, refresh_token="RT", **common),
        client_credentials_grant(http, url, scope="read", **common),
    ]
    assert [tokens.token_type for tokens in results] == ["DPoP"] * 3
    assert {tokens.dpop_key for tokens in results} == {binding.key.to_json()}
    sent = proofs(scripted_server)
    assert [(p["htm"], p["htu"]) for p in sent] == [("POST", url)] * 3
    assert len({p["jti"] for p in sent}) == 3
    assert all("ath" not in p for p in sent)
    assert "dpop_key" not in repr(results[0]).replace("dpop_key=<set>", "")


def test_use_dpop_nonce_is_retried_once_with_the_nonce_and_fresh_authentication(
    http, scripted_server
):
    scripted_server.add(
        "/token",
        Reply(status=400, headers={"DPoP-Nonce": "server-nonce-1"}, body=NONCE_ERROR),
        Reply(body=DPOP_TOKENS, headers={"DPoP-Nonce": "server-nonce-2"}),
    )
    url = scripted_server.url("/token")
    binding = dpop.DPoP(dpop.make_key())
    key_pem = _ec_pem()
    jwt_auth = ClientCredentials("client-1", None, "private_key_jwt", private_key=key_pem)
    tokens = exchange_code(
        http,
        url,
        code="c",
        redirect_uri="https://s/cb",
        code_verifier="v" * 43,
        credentials=jwt_auth,
        dpop=binding,
    )
    assert tokens.token_type == "DPoP"
    first, second = proofs(scripted_server)
    assert "nonce" not in first and second["nonce"] == "server-nonce-1"
    assert first["jti"] != second["jti"]
    assertions = [r.form()["client_assertion"][0] for r in scripted_server.requests]
    assert assertions[0] != assertions[1]  # a client assertion's jti is single-use too
    assert all(
        r.form()["client_assertion_type"] == [ASSERTION_TYPE] for r in scripted_server.requests
    )
    # the nonce of the success is the one for the next request
    assert binding.nonces[dpop.origin(url)] == "server-nonce-2"


def test_a_second_use_dpop_nonce_is_a_typed_error_after_exactly_two_requests(http, scripted_server):
    scripted_server.default(
        "/token", Reply(status=400, headers={"DPoP-Nonce": "always-new"}, body=NONCE_ERROR)
    )
    with pytest.raises(DPoPNonceRejected, match="use_dpop_nonce"):
        refresh_token_grant(
            http,
            scripted_server.url("/token"),
            refresh_token="RT",
            credentials=BASIC,
            dpop=dpop.DPoP(dpop.make_key()),
        )
    assert len(scripted_server.requests) == 2


def test_use_dpop_nonce_without_a_nonce_is_not_retried(http, scripted_server):
    scripted_server.default("/token", Reply(status=400, body=NONCE_ERROR))
    with pytest.raises(DPoPNonceRejected):
        refresh_token_grant(
            http,
            scripted_server.url("/token"),
            refresh_token="RT",
            credentials=BASIC,
            dpop=dpop.DPoP(dpop.make_key()),
        )
    assert len(scripted_server.requests) == 1


def test_a_request_without_dpop_is_never_retried_for_a_nonce(http, scripted_server):
    scripted_server.default(
        "/token", Reply(status=400, headers={"DPoP-Nonce": "n"}, body=NONCE_ERROR)
    )
    with pytest.raises(DPoPNonceRejected):
        refresh_token_grant(
            http, scripted_server.url("/token"), refresh_token="RT", credentials=BASIC
        )
    assert len(scripted_server.requests) == 1
    assert "dpop" not in scripted_server.requests[0].headers


def test_invalid_dpop_proof_is_a_typed_error(http, scripted_server):
    scripted_server.default(
        "/token", Reply(status=400, body={"error": "invalid_dpop_proof", "error_description": "x"})
    )
    with pytest.raises(DPoPProofRejected):
        client_credentials_grant(
            http,
            scripted_server.url("/token"),
            scope="",
            credentials=BASIC,
            dpop=dpop.DPoP(dpop.make_key()),
        )


def _ec_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()

"""ID token negatives built with PyJWT (OIDC Core §3.1.3.7; SECURITY R32, R33, catalogue §2.4).

Tokens are signed here; the provider's JWKS is served over real HTTP by the scripted server.
Every bad token is refused with its own exception class (and so its own message).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from oauthconn.exceptions import (
    IDTokenAlgorithmNotAllowed,
    IDTokenAudienceMismatch,
    IDTokenExpired,
    IDTokenIssuedInFuture,
    IDTokenIssuerMismatch,
    IDTokenKeyNotFound,
    IDTokenNonceMismatch,
    IDTokenSignatureInvalid,
    JWKSUnavailable,
    MalformedIDToken,
)
from oauthconn.http import build_client
from oauthconn.oauth.idtoken import IDTokenExpectations, allowed_algorithms, validate_id_token
from tests.scripted_server import Reply

ISSUER = "https://as.example"
CLIENT = "client-1"
NONCE = "n-0S6_WzA2Mj"
NOW = datetime.now(UTC)
K1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
K2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC1 = ec.generate_private_key(ec.SECP256R1())


def public_jwk(key, kid: str, **extra) -> dict:
    jwk = json.loads(
        jwt.algorithms.get_default_algorithms()[
            "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"
        ].to_jwk(key.public_key())
    )
    return {**jwk, "kid": kid, **extra}


def claims(**overrides) -> dict:
    base = {
        "iss": ISSUER,
        "sub": "user-42",
        "aud": CLIENT,
        "exp": int((NOW + timedelta(minutes=5)).timestamp()),
        "iat": int(NOW.timestamp()),
        "nonce": NONCE,
        "name": "Ada",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key=K1, kid: str | None = "k1", alg: str = "RS256", headers=None, **overrides) -> str:
    header = {"kid": kid} if kid else {}
    return jwt.encode(
        claims(**overrides), key, algorithm=alg, headers={**header, **(headers or {})}
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict, payload: dict) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"


@pytest.fixture
def keys_at(scripted_server):
    """Serve ``keys`` as the JWKS (each call queues one reply); return the JWKS URI."""

    def serve(*key_sets: list[dict], default: list[dict] | None = None) -> str:
        for keys in key_sets:
            scripted_server.add("/jwks", Reply(body={"keys": keys}))
        if default is not None:
            scripted_server.default("/jwks", Reply(body={"keys": default}))
        return scripted_server.url("/jwks")

    return serve


def check(token: str, jwks_uri: str, **expect) -> dict:
    options = {"issuer": ISSUER, "client_id": CLIENT, "nonce": NONCE, "jwks_uri": jwks_uri}
    with build_client() as client:
        # now= pins the clock to the one the tokens were made with (no wall-clock race).
        expectations = IDTokenExpectations(**{**options, **expect})
        return validate_id_token(client, token, expectations, now=NOW)


# --- accepted ---------------------------------------------------------------------------------


def test_a_valid_token_gives_its_claims(keys_at):
    uri = keys_at([public_jwk(K1, "k1")])
    assert check(sign(), uri)["sub"] == "user-42"


def test_thirty_seconds_of_clock_skew_are_accepted(keys_at):
    uri = keys_at(default=[public_jwk(K1, "k1")])
    expired_30s_ago = int((NOW - timedelta(seconds=30)).timestamp())
    assert check(sign(exp=expired_30s_ago), uri)["sub"] == "user-42"
    issued_30s_ahead = int((NOW + timedelta(seconds=30)).timestamp())
    assert check(sign(iat=issued_30s_ahead), uri)["sub"] == "user-42"


def test_es256_when_allowed(keys_at):
    uri = keys_at([public_jwk(K1, "k1"), public_jwk(EC1, "e1")])
    token = sign(EC1, "e1", "ES256")
    assert check(token, uri, algorithms=("RS256", "ES256"))["sub"] == "user-42"


def test_unknown_kid_refetches_once_and_accepts_the_rotated_key(keys_at, scripted_server):
    uri = keys_at([public_jwk(K1, "k1")], [public_jwk(K1, "k1"), public_jwk(K2, "k2")])
    check(sign(), uri)

    assert check(sign(K2, "k2"), uri)["sub"] == "user-42"
    assert len(scripted_server.requests_to("/jwks")) == 2


def test_unknown_kids_cause_at_most_one_refetch(keys_at, scripted_server):
    uri = keys_at(default=[public_jwk(K1, "k1")])
    check(sign(), uri)
    for n in range(50):
        with pytest.raises(IDTokenKeyNotFound, match="no key matches kid"):
            check(sign(K2, f"random-{n}"), uri)
    assert len(scripted_server.requests_to("/jwks")) == 2


# --- refused: one class each -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"iss": "https://evil.example"}, IDTokenIssuerMismatch),
        ({"aud": "another-client"}, IDTokenAudienceMismatch),
        ({"aud": [CLIENT, "https://unknown.example"]}, IDTokenAudienceMismatch),
        ({"azp": "another-client"}, IDTokenAudienceMismatch),
        ({"exp": int((NOW - timedelta(minutes=10)).timestamp())}, IDTokenExpired),
        ({"iat": int((NOW + timedelta(minutes=10)).timestamp())}, IDTokenIssuedInFuture),
        ({"iat": int((NOW - timedelta(days=2)).timestamp())}, IDTokenIssuedInFuture),
        ({"nonce": "another-nonce"}, IDTokenNonceMismatch),
        ({"nonce": None}, IDTokenNonceMismatch),
        ({"sub": None}, MalformedIDToken),
        ({"exp": None}, MalformedIDToken),
    ],
    ids=[
        "wrong-iss",
        "wrong-aud",
        "extra-aud",
        "wrong-azp",
        "expired",
        "future-iat",
        "ancient-iat",
        "wrong-nonce",
        "no-nonce",
        "no-sub",
        "no-exp",
    ],
)
def test_bad_claims_are_refused(keys_at, overrides, error):
    uri = keys_at([public_jwk(K1, "k1")])
    with pytest.raises(error, match=error.message.split("(")[0][:30]):
        check(sign(**overrides), uri)


def test_each_failure_has_its_own_message():
    classes = [
        IDTokenAlgorithmNotAllowed,
        IDTokenAudienceMismatch,
        IDTokenExpired,
        IDTokenIssuedInFuture,
        IDTokenIssuerMismatch,
        IDTokenKeyNotFound,
        IDTokenNonceMismatch,
        IDTokenSignatureInvalid,
        JWKSUnavailable,
        MalformedIDToken,
    ]
    assert len({c.message for c in classes}) == len({c.code for c in classes}) == len(classes)


def test_alg_none_is_refused(keys_at):
    uri = keys_at([public_jwk(K1, "k1")])
    token = unsigned({"alg": "none", "kid": "k1"}, claims()) + "."
    with pytest.raises(IDTokenAlgorithmNotAllowed, match="'none'"):
        check(token, uri, algorithms=allowed_algorithms(["none", "RS256"]))


@pytest.mark.parametrize("as_jwk_n", [False, True], ids=["pem", "jwk-n"])
def test_hs256_keyed_with_the_public_key_is_refused(keys_at, as_jwk_n):
    """Algorithm confusion: the attacker HMACs with the AS's public key (RFC 8725 §2.1)."""
    uri = keys_at(default=[public_jwk(K1, "k1")])
    public = K1.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    secret = public_jwk(K1, "k1")["n"].encode() if as_jwk_n else public
    signing_input = unsigned({"alg": "HS256", "kid": "k1", "typ": "JWT"}, claims())
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(mac)}"

    with pytest.raises(IDTokenAlgorithmNotAllowed, match="HS256"):
        check(token, uri)
    # Even where HS256 is configured, its key is the client secret, never a public key.
    with pytest.raises(IDTokenSignatureInvalid):
        check(
            token,
            uri,
            algorithms=("RS256", "HS256"),
            client_secret="the-client-secret-long-enough-for-hs256!",
        )


def test_hs256_with_the_client_secret_when_configured(keys_at):
    token = sign("the-client-secret-long-enough-for-hs256!", None, "HS256")
    expect = {"algorithms": ("HS256",), "client_secret": "the-client-secret-long-enough-for-hs256!"}
    assert check(token, "", **expect)["sub"] == "user-42"


def test_an_algorithm_outside_the_allow_list_is_refused(keys_at):
    uri = keys_at([public_jwk(K1, "k1")])
    with pytest.raises(IDTokenAlgorithmNotAllowed, match="'RS512'"):
        check(sign(alg="RS512"), uri)


def test_a_flipped_signature_bit_is_refused(keys_at):
    uri = keys_at([public_jwk(K1, "k1")])
    head, payload, signature = sign().split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 0x01
    with pytest.raises(IDTokenSignatureInvalid):
        check(f"{head}.{payload}.{b64(bytes(raw))}", uri)


def test_a_key_embedded_in_the_header_is_ignored(keys_at):
    """R33: the attacker's own key in a ``jwk`` header must not be used (Authlib CVE-2026-27962)."""
    uri = keys_at([public_jwk(K1, "k1")])
    token = sign(K2, "k1", headers={"jwk": public_jwk(K2, "k1")})
    with pytest.raises(IDTokenSignatureInvalid):
        check(token, uri)


def test_unknown_kid_still_missing_after_the_refetch_is_refused(keys_at, scripted_server):
    uri = keys_at(default=[public_jwk(K1, "k1")])
    with pytest.raises(IDTokenKeyNotFound):
        check(sign(K2, "k2"), uri)
    assert len(scripted_server.requests_to("/jwks")) == 2


def test_ambiguous_keys_are_refused(keys_at):
    uri = keys_at([public_jwk(K1, "k1"), public_jwk(K2, "k1")])
    with pytest.raises(IDTokenKeyNotFound, match="several keys match"):
        check(sign(), uri)


def test_encryption_keys_are_not_used_for_signatures(keys_at):
    uri = keys_at(default=[public_jwk(K1, "k1", use="enc")])
    with pytest.raises(IDTokenKeyNotFound):
        check(sign(), uri)


@pytest.mark.parametrize(
    "reply",
    [Reply(status=500, body="down"), Reply(body="<html>"), Reply(body={"no": "keys"})],
    ids=["500", "not-json", "no-keys"],
)
def test_an_unusable_jwks_fails_closed(scripted_server, reply):
    scripted_server.add("/jwks", reply)
    with pytest.raises(JWKSUnavailable, match="signing keys"):
        check(sign(), scripted_server.url("/jwks"))


def test_cached_keys_keep_working_when_the_jwks_endpoint_fails(scripted_server):
    scripted_server.add("/jwks", Reply(body={"keys": [public_jwk(K1, "k1")]}))
    scripted_server.default("/jwks", Reply(status=500))
    uri = scripted_server.url("/jwks")
    check(sign(), uri)
    with pytest.raises(IDTokenKeyNotFound):
        check(sign(K2, "k2"), uri)
    assert check(sign(), uri)["sub"] == "user-42"


@pytest.mark.parametrize(
    "token",
    [
        "two.segments",
        "!!!.@@@.###",
        b64(b"not json") + "." + b64(b"{}") + ".sig",
        "a" * (64 * 1024 + 1),
    ],
    ids=["two-segments", "bad-base64", "header-not-json", "too-long"],
)
def test_malformed_tokens_are_refused(token):
    with pytest.raises(MalformedIDToken):
        check(token, "https://as.example/jwks")


def test_unknown_critical_headers_are_refused(keys_at):
    uri = keys_at([public_jwk(K1, "k1")])
    token = sign(headers={"crit": ["exp-ext"], "exp-ext": 1})
    with pytest.raises(MalformedIDToken):
        check(token, uri)

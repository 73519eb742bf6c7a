"""oauthconn.oauth.pkce: RFC 7636 verifiers and challenges, state and nonce."""

from __future__ import annotations

import base64
import re

from oauthconn.oauth.pkce import code_challenge_s256, make_code_verifier, make_nonce, make_state

UNRESERVED_43_TO_128 = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # RFC 7636 §4.1


def test_verifier_is_43_unreserved_characters():
    verifier = make_code_verifier()
    assert len(verifier) == 43
    assert UNRESERVED_43_TO_128.match(verifier)


def test_challenge_matches_rfc7636_appendix_b():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge_s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_challenge_is_unpadded_base64url_of_32_bytes():
    challenge = code_challenge_s256(make_code_verifier())
    assert len(challenge) == 43 and "=" not in challenge
    assert len(base64.urlsafe_b64decode(challenge + "=")) == 32


def test_values_are_fresh_every_time():
    for make in (make_code_verifier, make_state, make_nonce):
        values = {make() for _ in range(50)}
        assert len(values) == 50


def test_state_and_nonce_carry_at_least_128_bits():
    # token_urlsafe(32): 32 random bytes -> 43 characters; R9 asks for >= 128 bits.
    for value in (make_state(), make_nonce()):
        assert len(base64.urlsafe_b64decode(value + "=")) >= 16
        assert re.fullmatch(r"[A-Za-z0-9_-]+", value)

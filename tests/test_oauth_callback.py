"""oauthconn.oauth.callback: parsing the authorization response (SECURITY §2.1, R17, R21)."""

from __future__ import annotations

import pytest
from django.core.exceptions import SuspiciousOperation
from django.http import QueryDict

from oauthconn.exceptions import InvalidCallback, IssuerMismatch
from oauthconn.oauth.callback import CallbackParams, check_issuer, parse_callback

ISSUER = "https://as.example"


def qd(query: str) -> QueryDict:
    return QueryDict(query)


def test_success_response():
    params = parse_callback(qd("code=abc&state=S&iss=https%3A%2F%2Fas.example"))
    assert params == CallbackParams(
        state="S", code="abc", iss=ISSUER, error=None, error_description=""
    )


def test_plain_dict_of_lists_works_too():
    params = parse_callback({"code": ["abc"], "state": ["S"]})
    assert (params.code, params.state, params.iss) == ("abc", "S", None)


def test_code_stays_out_of_repr():
    assert "abc" not in repr(parse_callback(qd("code=abc&state=S")))


@pytest.mark.parametrize("query", ["code=abc", "code=abc&state=", "error=access_denied"])
def test_c1_missing_or_empty_state(query):
    with pytest.raises(InvalidCallback, match="state"):
        parse_callback(qd(query))


def test_c1_is_a_suspicious_operation_for_django():
    with pytest.raises(SuspiciousOperation):
        parse_callback(qd("code=abc"))


@pytest.mark.parametrize("query", ["state=S", "state=S&code=", "state=S&error=", "state=S&foo=1"])
def test_c15_neither_code_nor_error(query):
    with pytest.raises(InvalidCallback, match="neither"):
        parse_callback(qd(query))


@pytest.mark.parametrize("name", ["state", "code"])
def test_c16_oversized_values(name):
    values = {"state": "S", "code": "c", name: "x" * 100_000}
    with pytest.raises(InvalidCallback, match="too long"):
        parse_callback({k: [v] for k, v in values.items()})


def test_4096_characters_are_fine():
    params = parse_callback({"state": ["s" * 4096], "code": ["c" * 4096]})
    assert len(params.state) == 4096


@pytest.mark.parametrize("name", ["state", "code", "iss"])
@pytest.mark.parametrize("value", ["a\nb", "a\x00b", "caf\u00e9", "a\x7fb", "\u202etxt"])
def test_values_must_be_printable_ascii(name, value):
    values = {"state": "S", "code": "c", name: value}
    with pytest.raises(InvalidCallback, match="invalid characters"):
        parse_callback({k: [v] for k, v in values.items()})


def test_c17_unknown_parameters_are_ignored():
    params = parse_callback(qd("code=c&state=S&foo=bar&next=https%3A%2F%2Fevil.example%2F"))
    assert params.code == "c"


@pytest.mark.parametrize(
    "query",
    [
        "state=S&state=T&code=c",
        "state=S&code=c&code=d",
        "state=S&code=c&iss=a&iss=b",
        "state=S&error=access_denied&error=server_error",
    ],
)
def test_repeated_parameters_are_refused(query):
    with pytest.raises(InvalidCallback, match="repeats"):
        parse_callback(qd(query))


def test_error_response_is_parsed_and_cleaned():
    params = parse_callback(
        qd(
            "state=S&error=access_denied"
            "&error_description=%3Cscript%3Ealert(1)%3C%2Fscript%3E%0D%0Anext"
            "&error_uri=javascript%3Aalert(1)"
        )
    )
    assert params.error == "access_denied"
    # Only RFC 6749 §4.1.2.1 characters survive; the view escapes on top of this.
    assert params.error_description == "<script>alert(1)</script>??next"
    assert "\n" not in params.error_description


def test_long_error_description_is_capped():
    params = parse_callback(
        {"state": ["S"], "error": ["server_error"], "error_description": ["x" * 10_000]}
    )
    assert len(params.error_description) <= 300


def test_error_wins_over_code():
    """A response with both can never be redeemed."""
    params = parse_callback(qd("state=S&code=c&error=access_denied"))
    assert params.error == "access_denied"
    assert params.code == ""


# --- iss (RFC 9207) --------------------------------------------------------------------------


def params_with(iss: str | None) -> CallbackParams:
    return CallbackParams(state="S", code="c", iss=iss, error=None, error_description="")


@pytest.mark.parametrize("required", [True, False])
def test_matching_iss_passes(required):
    check_issuer(params_with(ISSUER), ISSUER, required=required)


@pytest.mark.parametrize(
    "iss", ["https://attacker.example", "https://as.example/", "HTTPS://AS.EXAMPLE", ""]
)
@pytest.mark.parametrize("required", [True, False])
def test_c12_c14_other_iss_is_refused(iss, required):
    """Exact string comparison, also when the AS does not advertise iss support."""
    with pytest.raises(IssuerMismatch):
        check_issuer(params_with(iss), ISSUER, required=required)


def test_c13_missing_iss_when_required():
    with pytest.raises(IssuerMismatch, match="no iss"):
        check_issuer(params_with(None), ISSUER, required=True)


def test_missing_iss_when_not_required_passes():
    check_issuer(params_with(None), ISSUER, required=False)


def test_iss_with_unknown_expected_issuer_is_refused():
    with pytest.raises(IssuerMismatch, match="no issuer"):
        check_issuer(params_with(ISSUER), "", required=False)
    check_issuer(params_with(None), "", required=False)


def test_iss_is_checked_on_error_responses_too():
    params = parse_callback(qd("state=S&error=access_denied&iss=https%3A%2F%2Fattacker.example"))
    with pytest.raises(IssuerMismatch):
        check_issuer(params, ISSUER, required=False)


def test_issuer_mismatch_is_an_invalid_callback():
    assert issubclass(IssuerMismatch, InvalidCallback)

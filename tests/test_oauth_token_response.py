"""oauthconn.oauth.token_response: parsing token responses (SECURITY §2.2 T1-T29, §2.3, R26-R29).

Pure parsing, with an explicit ``sent_at``: no clock, no network.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from oauthconn.exceptions import (
    InvalidClient,
    InvalidGrant,
    InvalidProviderResponse,
    ProviderError,
    ProviderUnavailable,
    UnauthorizedClient,
)
from oauthconn.oauth.token_response import MAX_TOKEN_LENGTH, TokenSet, parse_token_response

SENT_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
YEAR = 366 * 24 * 3600
JSON = {"Content-Type": "application/json"}
OK = {"access_token": "AT-123", "token_type": "Bearer", "expires_in": 3600}


def parse(
    body: object = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    *,
    default_lifetime: int | None = None,
    max_lifetime: int = YEAR,
) -> TokenSet:
    raw = body if isinstance(body, bytes) else json.dumps(OK if body is None else body).encode()
    return parse_token_response(
        status,
        JSON if headers is None else headers,
        raw,
        sent_at=SENT_AT,
        default_lifetime=default_lifetime,
        max_lifetime=max_lifetime,
    )


def with_(**members: object) -> dict[str, object]:
    return {**OK, **members}


# --- success ---------------------------------------------------------------------------------


def test_minimal_success():
    tokens = parse()
    assert tokens == TokenSet(
        access_token="AT-123",
        token_type="Bearer",
        expires_at=SENT_AT + timedelta(seconds=3600),
        refresh_token=None,
        refresh_expires_at=None,
        scope=None,
        id_token=None,
    )


def test_full_success_with_unknown_members():
    tokens = parse(
        with_(
            refresh_token="RT",
            scope="read",
            id_token="a.b.c",
            refresh_token_expires_in=86400,
            x=[1],
        )
    )
    assert (tokens.refresh_token, tokens.scope, tokens.id_token) == ("RT", "read", "a.b.c")
    assert tokens.refresh_expires_at == SENT_AT + timedelta(days=1)


def test_repr_hides_tokens():
    text = repr(
        parse(with_(access_token="SECRET-AT", refresh_token="SECRET-RT", id_token="SECRET-ID"))
    )
    assert "SECRET" not in text
    assert "Bearer" in text


def test_expiry_is_aware_utc_even_for_other_zones():
    sent = datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    tokens = parse_token_response(
        200, JSON, json.dumps(OK).encode(), sent_at=sent, default_lifetime=None, max_lifetime=YEAR
    )
    assert tokens.expires_at == SENT_AT + timedelta(seconds=3600)
    assert tokens.expires_at.tzinfo == UTC


def test_naive_sent_at_is_a_programming_error():
    with pytest.raises(ValueError, match="aware"):
        parse_token_response(
            200, JSON, b"{}", sent_at=datetime(2026, 1, 1), default_lifetime=None, max_lifetime=1
        )


@pytest.mark.parametrize("token_type", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_t9_token_type_is_case_insensitive(token_type):
    assert parse(with_(token_type=token_type)).token_type == "Bearer"


def test_t29_long_opaque_token_is_kept_unchanged():
    token = "eyJ" + "x" * 12_000 + ".payload.sig"
    assert parse(with_(access_token=token)).access_token == token


@pytest.mark.parametrize("member", ["access_token", "refresh_token", "id_token"])
def test_tokens_above_64_kb_are_refused(member):
    with pytest.raises(InvalidProviderResponse, match=f"{member} is too long"):
        parse(with_(**{member: "x" * (MAX_TOKEN_LENGTH + 1)}))


def test_t15_no_refresh_token():
    assert parse().refresh_token is None
    assert parse(with_(refresh_token=None)).refresh_token is None
    assert parse(with_(refresh_token="")).refresh_token is None


def test_refresh_token_of_the_wrong_type_is_refused():
    with pytest.raises(InvalidProviderResponse, match="refresh_token"):
        parse(with_(refresh_token=123))


def test_t16_scope_is_returned_as_sent():
    assert parse(with_(scope="read")).scope == "read"


@pytest.mark.parametrize(("member", "value"), [("scope", ["a", "b"]), ("id_token", 5)])
def test_other_members_of_the_wrong_type_are_ignored(member, value):
    assert getattr(parse(with_(**{member: value})), member) is None


# --- expires_in (R28, T11-T14) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"), [(3600, 3600), ("3600", 3600), (3600.0, 3600), (1, 1)]
)
def test_t11_accepted_expires_in(value, seconds):
    assert parse(with_(expires_in=value)).expires_at == SENT_AT + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "value", [0, -5, "0", "-5", "3600.5", "36e2", " 3600", "", "soon", 3600.5, True, False, [1], {}]
)
def test_t12_invalid_expires_in(value):
    with pytest.raises(InvalidProviderResponse, match="expires_in"):
        parse(with_(expires_in=value))


@pytest.mark.parametrize("value", [10**12, str(10**12), 10**30, "9" * 5000])
def test_t13_huge_expires_in_is_clamped(value):
    assert parse(with_(expires_in=value)).expires_at == SENT_AT + timedelta(seconds=YEAR)


def test_clamping_survives_a_huge_max_lifetime():
    tokens = parse(with_(expires_in=10**12), max_lifetime=10**15)
    assert tokens.expires_at > SENT_AT + timedelta(days=365 * 50)


@pytest.mark.parametrize("expires_in", ["missing", None])
def test_t14_missing_expires_in_uses_the_default(expires_in):
    body = dict(OK)
    if expires_in == "missing":
        del body["expires_in"]
    else:
        body["expires_in"] = expires_in
    assert parse(body).expires_at is None
    assert parse(body, default_lifetime=600).expires_at == SENT_AT + timedelta(seconds=600)


@pytest.mark.parametrize("member", ["refresh_token_expires_in", "refresh_expires_in"])
def test_refresh_expiry_members(member):
    tokens = parse(with_(refresh_token="RT", **{member: "7200"}))
    assert tokens.refresh_expires_at == SENT_AT + timedelta(seconds=7200)


@pytest.mark.parametrize("value", [0, -1, "x", True, 1.5])
def test_invalid_refresh_expiry_is_ignored(value):
    # Keycloak sends refresh_expires_in 0 for offline tokens: "no expiry", not failure.
    assert parse(with_(refresh_token="RT", refresh_expires_in=value)).refresh_expires_at is None


# --- malformed success bodies (T1, T3, T5-T8, T10, T28) --------------------------------------


@pytest.mark.parametrize("body", [b'{"access_tok', b"{'a': 1}", b"not json at all", b"[" * 100_000])
def test_t1_malformed_json(body):
    with pytest.raises(InvalidProviderResponse, match="Invalid JSON"):
        parse(body)


def test_json_constants_are_refused():
    with pytest.raises(InvalidProviderResponse, match="Invalid JSON"):
        parse(b'{"access_token": "a", "token_type": "bearer", "expires_in": Infinity}')


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"<html><body>Please log in</body></html>", {"Content-Type": "text/html"}),
        (b"  <!DOCTYPE html><h1>WAF</h1>", {"Content-Type": "application/json"}),
        (b"Access denied by policy", {"Content-Type": "text/html; charset=utf-8"}),
    ],
)
def test_t3_html_with_200(body, headers):
    with pytest.raises(InvalidProviderResponse, match=r"Unexpected HTML response .*\(HTTP 200\)"):
        parse(body, headers=headers)


@pytest.mark.parametrize("body", [b"[]", b'"x"', b"null", b"42", b"[{}]"])
def test_t5_json_that_is_not_an_object(body):
    with pytest.raises(InvalidProviderResponse, match="not an object"):
        parse(body)


def test_empty_200_body():
    with pytest.raises(InvalidProviderResponse, match="Empty"):
        parse(b"")


def test_t6_missing_access_token():
    with pytest.raises(InvalidProviderResponse, match="no access_token"):
        parse({"token_type": "Bearer"})


@pytest.mark.parametrize("value", ["", 123, ["x"], {"a": 1}])
def test_t7_empty_or_non_text_access_token(value):
    with pytest.raises(InvalidProviderResponse, match="access_token"):
        parse(with_(access_token=value))


@pytest.mark.parametrize(
    "body", [{"access_token": "x"}, with_(token_type=""), with_(token_type=None)]
)
def test_t8_missing_token_type(body):
    with pytest.raises(InvalidProviderResponse, match="missing token_type"):
        parse(body)


@pytest.mark.parametrize("token_type", ["mac", "N_A", "pop", "DPoP", "bearer ", 1])
def test_t10_unsupported_token_type(token_type):
    with pytest.raises(InvalidProviderResponse, match="Unsupported token type"):
        parse(with_(token_type=token_type))


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=ISO-8859-1",
        "text/javascript",
        "text/plain",
        "",
        "application/octet-stream",
        "text/html",  # mislabelled JSON is still JSON; only HTML bodies are refused
    ],
)
def test_t28_json_with_odd_content_type(content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    assert parse(headers=headers).access_token == "AT-123"


def test_json_in_a_declared_non_utf8_charset():
    body = json.dumps(with_(scope="café"), ensure_ascii=False).encode("latin-1")
    tokens = parse(body, headers={"Content-Type": "application/json; charset=ISO-8859-1"})
    assert tokens.scope == "café"


def test_json_with_a_byte_order_mark():
    assert parse(b"\xef\xbb\xbf" + json.dumps(OK).encode()).access_token == "AT-123"


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", ""])
def test_form_encoded_success_github_legacy(content_type):
    body = b"access_token=gho_abc&scope=repo%2Cgist&token_type=bearer"
    tokens = parse(body, headers={"Content-Type": content_type})
    assert (tokens.access_token, tokens.scope, tokens.expires_at) == ("gho_abc", "repo,gist", None)


def test_form_encoded_error():
    body = b"error=bad_verification_code&error_description=The+code+passed+is+incorrect"
    with pytest.raises(ProviderError, match="bad_verification_code: The code passed is incorrect"):
        parse(body, headers={"Content-Type": "application/x-www-form-urlencoded"})


def test_form_encoded_repetition_is_refused():
    with pytest.raises(InvalidProviderResponse, match="repeated"):
        parse(b"access_token=a&access_token=b&token_type=bearer", headers={})


# --- error responses (T2, T4, T17-T23) -------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "cls"),
    [
        ("invalid_grant", InvalidGrant),
        ("invalid_client", InvalidClient),
        ("unauthorized_client", UnauthorizedClient),
        ("temporarily_unavailable", ProviderUnavailable),
        ("server_error", ProviderUnavailable),
        ("unsupported_grant_type", ProviderError),
        ("invalid_scope", ProviderError),
        ("something_new", ProviderError),
    ],
)
def test_error_codes_map_to_types(error, cls):
    with pytest.raises(cls) as caught:
        parse({"error": error, "error_description": "details"}, status=400)
    assert type(caught.value) is cls
    assert caught.value.error == error
    assert caught.value.description == "details"
    assert caught.value.status == 400
    assert f"({error}: details)" in str(caught.value)


def test_t17_error_member_in_a_200():
    with pytest.raises(InvalidGrant):
        parse(with_(error="invalid_grant"))


def test_null_error_member_is_not_an_error():
    assert parse(with_(error=None)).access_token == "AT-123"


def test_t18_invalid_grant_says_start_again():
    with pytest.raises(InvalidGrant, match="expired or already used"):
        parse({"error": "invalid_grant"}, status=400)


def test_t19_invalid_client_gives_the_credentials_hint():
    with pytest.raises(InvalidClient, match="client id, secret and authentication method"):
        parse(
            {"error": "invalid_client"}, status=401, headers={**JSON, "WWW-Authenticate": "Basic"}
        )


@pytest.mark.parametrize("body", [b"", b"Unauthorized"])
def test_401_with_www_authenticate_and_no_json_is_invalid_client(body):
    headers = {"WWW-Authenticate": 'Basic realm="token"', "Content-Type": "text/plain"}
    with pytest.raises(InvalidClient) as caught:
        parse(body, status=401, headers=headers)
    assert caught.value.status == 401


@pytest.mark.parametrize(
    "description",
    ["PKCE is not supported", "code_verifier not allowed", "Unknown parameter code_challenge"],
)
def test_t20_invalid_request_about_pkce_hints_at_pkce(description):
    with pytest.raises(ProviderError, match=r"may not support PKCE \(S256\)"):
        parse({"error": "invalid_request", "error_description": description}, status=400)


def test_invalid_request_without_pkce_mention_has_no_hint():
    with pytest.raises(ProviderError) as caught:
        parse({"error": "invalid_request", "error_description": "missing code"}, status=400)
    assert "PKCE" not in str(caught.value)


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (400, b"Unauthorized", "text/plain"),
        (401, b"Unauthorized", "text/plain"),
        (400, b"<h1>Bad Request</h1>", "text/html"),
        (403, b"", ""),
        (404, b"{not json", "application/json"),
    ],
)
def test_t2_non_json_error_bodies_name_the_status(status, body, content_type):
    with pytest.raises(ProviderError) as caught:
        parse(body, status=status, headers={"Content-Type": content_type})
    assert type(caught.value) is ProviderError
    assert f"(HTTP {status})" in str(caught.value)
    assert "not JSON" in str(caught.value)
    assert caught.value.status == status


def test_4xx_json_without_error_names_the_status():
    with pytest.raises(ProviderError, match=r"\(HTTP 400\)"):
        parse({"message": "nope"}, status=400)


@pytest.mark.parametrize("status", [201, 204])
def test_other_2xx_is_not_a_token_response(status):
    with pytest.raises(InvalidProviderResponse, match=f"HTTP {status}"):
        parse(status=status)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize(
    ("body", "content_type"), [(b"<html>Bad Gateway</html>", "text/html"), (b"", ""), (b"oops", "")]
)
def test_t4_t22_server_errors_are_transient(status, body, content_type):
    with pytest.raises(ProviderUnavailable) as caught:
        parse(body, status=status, headers={"Content-Type": content_type})
    assert caught.value.status == status
    assert f"HTTP {status}" in str(caught.value)
    assert caught.value.transient


def test_5xx_with_a_json_error_keeps_it():
    with pytest.raises(ProviderUnavailable) as caught:
        parse(
            {"error": "temporarily_unavailable"}, status=503, headers={**JSON, "Retry-After": "7"}
        )
    assert (caught.value.error, caught.value.retry_after) == ("temporarily_unavailable", 7)


def test_t21_rate_limited_with_retry_after_seconds():
    with pytest.raises(ProviderUnavailable, match="try again in 30 s") as caught:
        parse(b"", status=429, headers={"Retry-After": "30"})
    assert caught.value.retry_after == 30


def test_retry_after_as_http_date_and_capped():
    later = "Sun, 01 Mar 2026 12:02:00 GMT"  # SENT_AT + 120 s
    with pytest.raises(ProviderUnavailable) as caught:
        parse(b"", status=503, headers={"Retry-After": later})
    assert caught.value.retry_after == 120
    with pytest.raises(ProviderUnavailable) as caught:
        parse(b"", status=503, headers={"Retry-After": "86400"})
    assert caught.value.retry_after == 3600


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_t23_redirects_are_errors(status):
    with pytest.raises(InvalidProviderResponse, match="redirected; redirects are not followed"):
        parse(b"", status=status, headers={"Location": "https://attacker.example/token"})


def test_messages_never_contain_tokens_or_raw_bodies():
    body = {
        "error": "invalid_grant",
        "error_description": "<b>bad</b>\r\nX-Injected: 1",
        "access_token": "AT-SECRET",
    }
    with pytest.raises(InvalidGrant) as caught:
        parse(body, status=400)
    message = str(caught.value)
    assert "AT-SECRET" not in message
    assert "\r" not in message and "\n" not in message
    with pytest.raises(ProviderError) as caught:
        parse(b"secret-session-id=abc; you are not logged in", status=400, headers={})
    assert "secret-session-id" not in str(caught.value)


def test_non_string_error_member_is_still_an_error():
    with pytest.raises(ProviderError, match="unknown_error"):
        parse({"error": {"code": 190, "message": "x"}}, status=400)


def test_headers_are_case_insensitive():
    with pytest.raises(ProviderUnavailable) as caught:
        parse(b"", status=429, headers={"retry-after": "5"})
    assert caught.value.retry_after == 5

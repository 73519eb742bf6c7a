"""Client credentials connections against django-oauth-toolkit over real HTTP (SECURITY R44).

No user, no browser: the token is fetched on first use, reused while valid, fetched again
(never refreshed) once expired, single-flight under concurrent callers, and every request
carries the connection's scopes and extra token parameters.
"""

from __future__ import annotations

import base64
import threading
from datetime import timedelta
from urllib.parse import unquote_plus

import pytest
from django.db import connections
from django.utils import timezone

from oauthconn import get_connection
from oauthconn.models import ClientAuthMethod, GrantType, Token

pytestmark = pytest.mark.django_db(transaction=True)

EXTRA = {"audience": "https://api.example", "resource": "https://api.example/v1"}


@pytest.fixture
def machine(make_connection):
    return make_connection(
        "machine", grant_type=GrantType.CLIENT_CREDENTIALS, scopes="read", extra_token_params=EXTRA
    )


def token_requests(as_log) -> list:
    return as_log.to("/demo-oauth/token/")


def expire(connection) -> None:
    Token.objects.filter(connection=connection).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def test_first_use_fetches_a_token_with_scopes_and_extra_parameters(machine, as_log):
    access = get_connection("machine").access_token

    (request,) = token_requests(as_log)
    assert request.form["grant_type"] == ["client_credentials"]
    assert request.form["scope"] == ["read"]
    assert request.form["audience"] == [EXTRA["audience"]]
    assert request.form["resource"] == [EXTRA["resource"]]
    token = Token.objects.get(connection=machine)
    assert token.owner is None and token.access_token.reveal() == access
    assert token.scope == "read"


def test_basic_auth_form_encodes_the_id_and_secret(machine, as_log):
    """RFC 6749 §2.3.1: the secret (with ':' and '/') is form-encoded before Base64; DOT
    decodes it that way, so the request only succeeds when we encode it right."""
    get_connection("machine").token()

    (request,) = token_requests(as_log)
    scheme, encoded = request.headers["Authorization"].split(" ")
    client_id, secret = base64.b64decode(encoded).decode().split(":")
    assert scheme == "Basic" and client_id == machine.client_id
    assert "%3A" in secret and "%2F" in secret
    assert unquote_plus(secret) == machine.client_secret.reveal()
    assert "client_secret" not in request.form


def test_client_secret_post(make_connection, as_log):
    connection = make_connection(
        "poster",
        grant_type=GrantType.CLIENT_CREDENTIALS,
        auth_method=ClientAuthMethod.CLIENT_SECRET_POST,
        scopes="read",
    )
    get_connection("poster").token()

    (request,) = token_requests(as_log)
    assert request.form["client_secret"] == [connection.client_secret.reveal()]
    assert request.headers["Authorization"] == ""


def test_a_valid_token_is_reused(machine, as_log):
    first = get_connection("machine").access_token
    second = get_connection("machine").access_token

    assert first == second
    assert len(token_requests(as_log)) == 1


def test_expiry_fetches_again_with_the_same_parameters_and_never_refreshes(machine, as_log):
    first = get_connection("machine").access_token
    expire(machine)

    second = get_connection("machine").access_token

    assert second != first
    requests = token_requests(as_log)
    assert [r.form["grant_type"] for r in requests] == [["client_credentials"]] * 2
    assert requests[1].form["scope"] == ["read"]
    assert requests[1].form["audience"] == [EXTRA["audience"]]
    assert requests[1].form["resource"] == [EXTRA["resource"]]


# PostgreSQL only: on the suite's in-memory SQLite (a shared cache, where a second writer
# fails at once with "database table is locked" instead of waiting) twenty threads creating
# the first token row fail in the database, not in the single-flight logic under test.
@pytest.mark.postgres
@pytest.mark.parametrize("expired", [False, True], ids=["empty", "expired"])
def test_concurrent_callers_cause_one_request(machine, as_log, expired):
    if expired:
        get_connection("machine").token()
        expire(machine)
        as_log.clear()
    count = 20
    results: list[str] = [""] * count
    barrier = threading.Barrier(count)

    def ask(i: int) -> None:
        barrier.wait()
        try:
            results[i] = get_connection("machine").access_token
        except Exception as err:  # noqa: BLE001 - the assertion below reports it
            results[i] = f"error: {type(err).__name__}: {err}"
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [r for r in results if r.startswith("error")] == []
    assert set(results) == {Token.objects.get(connection=machine).access_token.reveal()}
    assert len(token_requests(as_log)) == 1

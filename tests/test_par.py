"""Pushed authorization requests (RFC 9126) against oidc-provider with PAR required (issue 13).

The provider (tests/oidc_provider_par.py) refuses authorization requests that were not pushed;
its ``par-short`` client's request references live one second.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from oauthconn.flows.discovery import discover_provider
from oauthconn.models import (
    Connection,
    EventKind,
    GrantType,
    PendingAuthorization,
    Provider,
    Token,
    TokenStatus,
)
from tests.conftest import deliver, start
from tests.oidc_provider_par import PAR_CLIENTS
from tests.oidc_provider_server import OidcServer
from tests.scripted_server import Reply

pytestmark = [pytest.mark.strict_peer, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def par_provider(par_server: OidcServer, transactional_db) -> Provider:
    """The provider as discovery fills it: it names its push endpoint and requires it."""
    return Provider.objects.create(
        slug="par", name="PAR provider", **discover_provider(par_server.issuer)
    )


@pytest.fixture
def make_par(par_provider: Provider, par_server: OidcServer):
    def make(slug: str, client_id: str, **fields) -> Connection:
        method = PAR_CLIENTS[client_id]
        fields.setdefault("client_secret", par_server.secrets.get(client_id, ""))
        return Connection.objects.create(
            slug=slug,
            name=slug.title(),
            provider=par_provider,
            grant_type=GrantType.AUTHORIZATION_CODE_PKCE,
            client_id=client_id,
            client_auth_method=fields.pop("auth_method", method),
            scopes=fields.pop("scopes", "openid offline_access profile"),
            extra_authorize_params=fields.pop("extra_authorize_params", {"prompt": "consent"}),
            api_base_url=par_server.issuer + "/",
            **fields,
        )

    return make


def sent_query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def refused_start(client, connection: Connection) -> str:
    """POST the start view; it answers 303 back to the connection with one error message."""
    response = client.post(reverse("oauthconn:start", args=[connection.slug]))
    assert response.status_code == 303, response
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    return message


# --- the happy paths -----------------------------------------------------------------------


def test_discovery_reads_the_push_endpoint_and_the_requirement(par_provider, par_server):
    assert par_provider.pushed_authorization_request_endpoint == f"{par_server.issuer}/request"
    assert par_provider.requires_par is True


@pytest.mark.parametrize("client_id", ["par-basic", "par-post", "par-public"])
def test_required_push_sends_only_client_id_and_request_uri(
    staff_client, make_par, par_server, client_id
):
    connection = make_par(client_id, client_id)
    assert connection.use_par is False  # the provider's requirement alone turns it on

    url = start(staff_client, connection)

    assert url.startswith(f"{par_server.issuer}/auth?")
    query = sent_query(url)
    assert set(query) == {"client_id", "request_uri"}
    assert query["client_id"] == [client_id]
    assert query["request_uri"][0].startswith("urn:ietf:params:oauth:request_uri:")
    response = deliver(staff_client, connection, par_server.sign_in(url, "alice"))
    assert response.status_code == 303, response.content[:500]
    token = Token.objects.get(connection=connection)
    assert token.status == TokenStatus.ACTIVE and token.subject == "alice"
    assert "offline_access" in token.granted_scopes  # pushed scope and prompt were used


# --- a refused push: typed error, readable message, nothing stored ---------------------------


def assert_nothing_started(connection: Connection) -> None:
    assert not PendingAuthorization.objects.filter(connection=connection).exists()
    assert not Token.objects.filter(connection=connection).exists()


def test_a_wrong_client_secret_is_refused_at_the_push(staff_client, make_par, par_server):
    connection = make_par("par-basic", "par-basic", client_secret="not-the-secret")

    message = refused_start(staff_client, connection)

    assert "rejected the client credentials" in message and "invalid_client" in message
    assert "not-the-secret" not in message
    assert_nothing_started(connection)


def test_a_malformed_push_is_refused_with_the_providers_reason(staff_client, make_par):
    # oidc-provider refuses a prompt value it does not know with 400 invalid_request
    connection = make_par("par-basic", "par-basic", extra_authorize_params={"prompt": "bogus"})

    message = refused_start(staff_client, connection)

    assert "rejected the request as malformed" in message
    assert "unsupported prompt value requested" in message
    assert_nothing_started(connection)


def test_a_push_answer_without_expires_in_is_refused(staff_client, make_par, scripted_server):
    connection = make_par("par-basic", "par-basic")
    provider = connection.provider
    provider.pushed_authorization_request_endpoint = scripted_server.url("/par")
    provider.save()
    scripted_server.add("/par", Reply(201, body={"request_uri": "urn:example:1"}))

    message = refused_start(staff_client, connection)

    assert "no expires_in" in message
    assert_nothing_started(connection)
    [pushed] = scripted_server.requests
    assert pushed.headers["authorization"].startswith("Basic ")  # authenticated, as required
    assert "code_challenge" in pushed.form() and "state" in pushed.form()


def test_an_expired_request_uri_is_refused_by_the_provider_and_a_new_start_works(
    staff_client, make_par, par_server
):
    connection = make_par("par-short", "par-short")
    stale = start(staff_client, connection)
    time.sleep(1.5)  # par-short's request references live one second

    with pytest.raises(AssertionError, match="invalid_request_uri"):
        par_server.sign_in(stale)  # the provider's error page: it cannot know where to return

    # Each start pushes again, so a reference never waits on oauthconn's side; the fresh one
    # is not signed in with here: it too lives one second (the happy paths cover signing in).
    fresh = start(staff_client, connection)
    assert sent_query(fresh)["request_uri"] != sent_query(stale)["request_uri"]


def test_an_optional_push_is_used_only_when_chosen(staff_client, make_par, par_provider):
    par_provider.requires_par = False
    par_provider.save()
    connection = make_par("par-basic", "par-basic")
    assert set(sent_query(start(staff_client, connection))) > {"client_id", "state"}

    connection.use_par = True
    connection.save()
    assert set(sent_query(start(staff_client, connection))) == {"client_id", "request_uri"}


def test_a_connection_whose_provider_has_no_push_endpoint_says_so(staff_client, make_par):
    connection = make_par("par-basic", "par-basic", use_par=True)
    Provider.objects.filter(pk=connection.provider_id).update(
        pushed_authorization_request_endpoint="", requires_par=False
    )

    message = refused_start(staff_client, connection)

    assert "has no pushed authorization request endpoint" in message
    assert_nothing_started(connection)
    assert not connection.events.filter(kind=EventKind.AUTHORIZED).exists()

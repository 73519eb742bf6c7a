"""Per-grant API base URLs (issue 12): ``{token:instance_url}`` from the token response and
``{ask:host}`` typed when connecting, against django-oauth-toolkit over real HTTP.

DOT's token responses carry ``instance_url`` here through :class:`InstanceURLValidator`, as
Salesforce's do; what it says is set per test in :data:`INSTANCE_URLS`.
"""

# ruff: noqa: F811  (the fixtures imported from tests/test_oidc_live.py are named as arguments)
from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.db import connection as default_db
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import AccessToken
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.views import AuthorizationView, TokenView

from oauthconn import get_connection
from oauthconn.base_url import resolve, values_for_grant
from oauthconn.exceptions import (
    ConfigurationError,
    DisallowedResourceURL,
    GrantValueRefused,
)
from oauthconn.flows.probe import probe_connection
from oauthconn.flows.validation import validate_configuration
from oauthconn.models import Event, EventKind, GrantType, PendingAuthorization, Token
from oauthconn.presets import get_preset
from tests.conftest import authorize, consent, deliver, outcome, start
from tests.test_oidc_live import (  # noqa: F401  (fixtures shared with it)
    issuer,
    oidc_connection,
    oidc_provider,
)

pytestmark = pytest.mark.django_db(transaction=True)

#: client_id -> the instance_url DOT adds to that client's token responses
INSTANCE_URLS: dict[str, str] = {}


class InstanceURLValidator(OAuth2Validator):
    """Adds ``instance_url`` to token responses (authorization code and refresh alike)."""

    def save_bearer_token(self, token, request, *args, **kwargs):
        instance_url = INSTANCE_URLS.get(request.client.client_id)
        if instance_url is not None:
            token["instance_url"] = instance_url  # oauthlib sends this dict as the body
        return super().save_bearer_token(token, request, *args, **kwargs)


@pytest.fixture(autouse=True)
def instance_urls(settings):
    settings.OAUTH2_PROVIDER = {
        **settings.OAUTH2_PROVIDER,
        "OAUTH2_VALIDATOR_CLASS": "tests.test_grant_base_url.InstanceURLValidator",
        # DOT caches its server per view class; rebuild it so the validator above is used.
        "ALWAYS_RELOAD_OAUTHLIB_CORE": True,
    }
    INSTANCE_URLS.clear()
    yield INSTANCE_URLS
    INSTANCE_URLS.clear()
    for view in (TokenView, AuthorizationView):
        if "_oauthlib_core" in vars(view):
            del view._oauthlib_core


def other_origin(url: str) -> str:
    """The same live server under its other loopback name: another origin, same answers."""
    parts = urlsplit(url)
    host = "127.0.0.1" if parts.hostname == "localhost" else "localhost"
    return f"{parts.scheme}://{host}:{parts.port}"


def templated(make_connection, template: str, **fields):
    """A connection (registered at DOT) whose API base URL is ``template``."""
    connection = make_connection(**fields)
    connection.api_base_url = template
    connection.save(update_fields=["api_base_url"])
    return connection


def expire(connection) -> None:
    Token.objects.filter(connection=connection).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


@pytest.fixture
def salesforce_like(make_connection, live_server, instance_urls):
    connection = templated(make_connection, "{token:instance_url}/demo-api/", test_path="me/")
    instance_urls[connection.client_id] = live_server.url
    return connection


# --- {token:instance_url} ------------------------------------------------------------------


def test_the_api_base_url_comes_from_the_token_responses_instance_url(
    staff_client, salesforce_like, live_server, as_log
):
    outcome(staff_client, authorize(staff_client, salesforce_like))
    token = Token.objects.get(connection=salesforce_like)
    assert token.base_values == {"instance_url": live_server.url}
    crm = get_connection("crm")
    assert crm.api_base_url() == f"{live_server.url}/demo-api/"
    response = crm.get("me/")
    assert response.status_code == 200
    assert response.json() == {"username": "staff"}
    assert as_log.to("/demo-api/me/")[-1].headers["Authorization"].startswith("Bearer ")


def test_the_token_goes_only_to_the_grants_own_origin(
    staff_client, salesforce_like, live_server, as_log
):
    authorize(staff_client, salesforce_like)
    as_log.clear()
    crm = get_connection("crm")
    elsewhere = f"{other_origin(live_server.url)}/demo-api/me/"
    with pytest.raises(DisallowedResourceURL, match="only its API base URL's origin"):
        crm.get(elsewhere)
    with crm.client() as client, pytest.raises(DisallowedResourceURL):
        client.get(elsewhere)
    assert as_log.to("/demo-api/me/") == []


def test_a_refresh_that_moves_the_instance_moves_the_grant(
    staff_client, salesforce_like, live_server, instance_urls
):
    authorize(staff_client, salesforce_like)
    moved = other_origin(live_server.url)
    instance_urls[salesforce_like.client_id] = moved
    expire(salesforce_like)
    crm = get_connection("crm")
    assert crm.get("me/").status_code == 200
    assert Token.objects.get(connection=salesforce_like).base_values == {"instance_url": moved}
    assert crm.api_base_url() == f"{moved}/demo-api/"
    with pytest.raises(DisallowedResourceURL):
        crm.get(f"{live_server.url}/demo-api/me/")  # the old origin is no longer this grant's


@pytest.mark.parametrize(
    "sent",
    ["https://10.0.0.7", "https://169.254.169.254", "https://[fd00::1]", "https://u@x.example"],
)
def test_a_refresh_sending_a_refused_instance_url_keeps_the_old_one_and_the_new_token(
    staff_client, salesforce_like, live_server, instance_urls, sent
):
    authorize(staff_client, salesforce_like)
    old = Token.objects.get(connection=salesforce_like)
    instance_urls[salesforce_like.client_id] = sent
    expire(salesforce_like)
    get_connection("crm").access_token
    new = Token.objects.get(connection=salesforce_like)
    assert new.access_token.reveal() != old.access_token.reveal()  # renewed and stored
    assert new.base_values == {"instance_url": live_server.url}
    event = Event.objects.filter(kind=EventKind.REFRESHED).latest("pk")
    assert "The previous value is kept." in event.message
    assert get_connection("crm").get("me/").status_code == 200


@pytest.mark.parametrize(
    ("sent", "reason"),
    [
        ("https://10.1.2.3", "private, loopback or reserved"),
        ("https://169.254.169.254", "private, loopback or reserved"),
        ("https://x.example/evil/path", "must be an origin"),
        ("https://x.example#frag", "must be an origin"),
        ("javascript:alert(1)", "must be an origin"),
        ("http://x.example", "must use https"),
    ],
)
def test_an_authorization_whose_instance_url_is_refused_stores_nothing(
    staff_client, salesforce_like, instance_urls, sent, reason, as_log
):
    instance_urls[salesforce_like.client_id] = sent
    page = outcome(staff_client, authorize(staff_client, salesforce_like))
    assert reason in page.content.decode()
    assert not Token.objects.filter(connection=salesforce_like).exists()
    failed = Event.objects.get(kind=EventKind.AUTHORIZATION_FAILED)
    assert failed.data["code"] == "grant_value_refused"
    # The tokens it issued were revoked at the provider rather than left valid.
    assert len(as_log.to("/demo-oauth/revoke_token/")) == 2
    assert not AccessToken.objects.filter(application__client_id=salesforce_like.client_id)


def test_a_refused_reauthorization_leaves_the_working_grant_alone(
    staff_client, salesforce_like, live_server, instance_urls
):
    authorize(staff_client, salesforce_like)
    before = Token.objects.get(connection=salesforce_like)
    instance_urls[salesforce_like.client_id] = "https://10.9.9.9"
    authorize(staff_client, salesforce_like)
    after = Token.objects.get(connection=salesforce_like)
    assert after.access_token.reveal() == before.access_token.reveal()
    assert after.base_values == {"instance_url": live_server.url}
    assert get_connection("crm").get("me/").status_code == 200  # still valid at the provider


def test_a_token_response_without_the_field_is_refused_readably(
    staff_client, salesforce_like, instance_urls
):
    del instance_urls[salesforce_like.client_id]
    page = outcome(staff_client, authorize(staff_client, salesforce_like))
    assert "The token response has no instance_url" in page.content.decode()
    assert not Token.objects.filter(connection=salesforce_like).exists()


def test_the_async_client_keeps_to_the_grants_origin(
    staff_client, salesforce_like, live_server, as_log
):
    authorize(staff_client, salesforce_like)
    crm = get_connection("crm")
    elsewhere = f"{other_origin(live_server.url)}/demo-api/me/"

    async def calls() -> int:
        async with crm.async_client() as client:
            with pytest.raises(DisallowedResourceURL):
                await client.get(elsewhere)
            return (await client.get("me/")).status_code

    as_log.clear()
    assert asyncio.run(calls()) == 200
    assert len(as_log.to("/demo-api/me/")) == 1


def test_aget_connection_resolves_the_grants_url_on_the_loop(
    staff_client, salesforce_like, live_server, as_log
):
    """The async twin: the grant's row comes through atoken() (one thread hop), never from a
    sync query on the event loop, which Django's async-safety check would refuse."""
    from oauthconn import aget_connection

    authorize(staff_client, salesforce_like)

    async def call() -> int:
        crm = await aget_connection("crm")
        crm._token = None  # as after an expiry: the URL needs the row again
        return (await crm.aget("me/")).status_code

    as_log.clear()
    assert asyncio.run(call()) == 200
    assert len(as_log.to("/demo-api/me/")) == 1


def test_client_credentials_take_the_instance_url_of_their_first_token(
    make_connection, live_server, instance_urls
):
    connection = templated(
        make_connection,
        "{token:instance_url}/demo-api/",
        slug="service",
        grant_type=GrantType.CLIENT_CREDENTIALS,
    )
    instance_urls[connection.client_id] = live_server.url
    service = get_connection("service")
    assert service.get("me/").json() == {"username": None}  # the first token, fetched now
    assert Token.objects.get(connection=connection).base_values == {"instance_url": live_server.url}


def test_a_templated_grant_still_costs_one_query(
    staff_client, salesforce_like, live_server, django_assert_num_queries
):
    authorize(staff_client, salesforce_like)
    get_connection("crm").api_base_url()  # warm the per-process caches
    # SQLite: none while the database is unchanged (PRAGMA data_version); PostgreSQL: one
    with django_assert_num_queries(0 if default_db.vendor == "sqlite" else 1):
        crm = get_connection("crm")
        assert crm.api_base_url() == f"{live_server.url}/demo-api/"
        assert crm.access_token


def test_test_calls_the_grants_resolved_url(staff_client, salesforce_like, live_server):
    authorize(staff_client, salesforce_like)
    result = probe_connection(salesforce_like)
    assert result.ok
    assert result.url == f"{live_server.url}/demo-api/me/"


# --- {ask:host} -----------------------------------------------------------------------------


@pytest.fixture
def per_tenant(make_connection, live_server):
    port = urlsplit(live_server.url).port
    return templated(make_connection, f"http://{{ask:host}}:{port}/demo-api/", per_user=True)


def test_a_value_typed_when_connecting_is_stored_with_the_grant(
    client, django_user_model, per_tenant, live_server
):
    user = django_user_model.objects.create_user("alice", password="pw")
    client.force_login(user)
    deliver(client, per_tenant, consent(client, start(client, per_tenant, ask_host="LocalHost")))
    token = Token.objects.get(connection=per_tenant, owner=user)
    assert token.base_values == {"host": "localhost"}
    response = get_connection("crm", owner=user).get("me/")
    assert response.status_code == 200
    assert response.json() == {"username": "alice"}
    page = client.get(reverse("oauthconn:my_connections")).content.decode()
    assert f"{live_server.url}/demo-api/" in page
    assert 'name="ask_host"' in page


@pytest.mark.parametrize(
    "value",
    [
        "",
        "evil.example/",
        "localhost@evil.example",
        "evil.example:80",
        "a..b",
        "evil.example#",
        "evil.example?x=1",
        "%2e%2e",
        "evil.example\\x",
        "evil example",
        "-leading",
        "x" * 64,
    ],
)
def test_hostile_typed_values_are_refused_before_anything_starts(
    client, django_user_model, per_tenant, value
):
    user = django_user_model.objects.create_user("alice", password="pw")
    client.force_login(user)
    url = reverse("oauthconn:start", args=[per_tenant.slug])
    response = client.post(url, {"ask_host": value}, follow=True)
    assert not PendingAuthorization.objects.exists()
    messages = [str(m) for m in response.context["messages"]]
    assert any("Host" in m for m in messages), messages


@pytest.mark.parametrize(
    "value", ["10.0.0.1", "169.254.169.254", "192.168.1.10", "0.0.0.0", "api.localhost"]
)
def test_a_typed_value_resolving_to_a_private_address_is_refused(
    client, django_user_model, make_connection, value
):
    connection = templated(make_connection, "https://{ask:host}/api/", per_user=True)
    user = django_user_model.objects.create_user("alice", password="pw")
    client.force_login(user)
    url = reverse("oauthconn:start", args=[connection.slug])
    response = client.post(url, {"ask_host": value}, follow=True)
    assert not PendingAuthorization.objects.exists()
    messages = " ".join(str(m) for m in response.context["messages"])
    assert "private, loopback or reserved" in messages


@pytest.mark.parametrize("value", ["127.0.0.1", "localhost"])
def test_loopback_values_only_with_allow_insecure_loopback(
    client, django_user_model, make_connection, settings, value
):
    connection = templated(make_connection, "https://{ask:host}/api/", per_user=True)
    user = django_user_model.objects.create_user("alice", password="pw")
    client.force_login(user)
    url = reverse("oauthconn:start", args=[connection.slug])
    settings.OAUTHCONN = {**settings.OAUTHCONN, "ALLOW_INSECURE_LOOPBACK": False}
    client.post(url, {"ask_host": value})
    assert not PendingAuthorization.objects.exists()
    settings.OAUTHCONN = {**settings.OAUTHCONN, "ALLOW_INSECURE_LOOPBACK": True}
    client.post(url, {"ask_host": value})
    assert PendingAuthorization.objects.get().base_values == {"host": value}


def test_the_admin_authorize_form_asks_for_the_value(staff_client, make_connection, live_server):
    port = urlsplit(live_server.url).port
    connection = templated(make_connection, f"http://{{ask:host}}:{port}/demo-api/")
    page = staff_client.get(reverse("admin:oauthconn_connection_change", args=[connection.pk]))
    assert 'name="ask_host"' in page.content.decode()
    query = consent(staff_client, start(staff_client, connection, ask_host="localhost"))
    outcome(staff_client, deliver(staff_client, connection, query))
    assert Token.objects.get(connection=connection).base_values == {"host": "localhost"}
    page = staff_client.get(reverse("admin:oauthconn_connection_change", args=[connection.pk]))
    assert f"{live_server.url}/demo-api/" in page.content.decode()


def test_the_api_takes_the_values_and_shows_them(staff, make_connection, live_server):
    from rest_framework.test import APIClient

    port = urlsplit(live_server.url).port
    connection = templated(make_connection, f"http://{{ask:host}}:{port}/demo-api/")
    api = APIClient()
    api.force_login(staff)
    url = f"/api/oauthconn/connections/{connection.pk}/"
    refused = api.post(f"{url}authorize/", {"values": {"host": "x@evil.example"}}, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "grant_value_refused"
    assert not PendingAuthorization.objects.exists()
    started = api.post(f"{url}authorize/", {"values": {"host": "localhost"}}, format="json")
    assert started.status_code == 200
    deliver(api, connection, consent(api, started.json()["authorization_url"]))
    assert api.get(url).json()["token"]["base_values"] == {"host": "localhost"}


def test_an_account_switch_keeps_the_values_typed_for_the_new_account(
    staff_client, oidc_connection, django_user_model, live_server
):
    from django.test import Client

    port = urlsplit(live_server.url).port
    oidc_connection.api_base_url = f"http://{{ask:host}}:{port}/demo-api/"
    oidc_connection.save(update_fields=["api_base_url"])
    authorize_url = start(staff_client, oidc_connection, ask_host="localhost")
    deliver(staff_client, oidc_connection, consent(staff_client, authorize_url))
    assert Token.objects.get(connection=oidc_connection).base_values == {"host": "localhost"}
    bob = Client()
    bob.force_login(django_user_model.objects.create_user("bob", "bob@example.com", "pw"))
    authorize_url = start(staff_client, oidc_connection, ask_host="127.0.0.1")
    switch = deliver(staff_client, oidc_connection, consent(bob, authorize_url))
    assert switch["Location"].startswith("/oauthconn/switch/")
    # Until confirmed, the old account's grant and values stay.
    assert Token.objects.get(connection=oidc_connection).base_values == {"host": "localhost"}
    staff_client.post(switch["Location"], {"use_new": "1"})
    token = Token.objects.get(connection=oidc_connection)
    assert token.base_values == {"host": "127.0.0.1"}
    assert get_connection("idp").get("me/").json() == {"username": "bob"}


# --- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{token:instance_url}x/", "follow it with '/'"),
        ("https://{tokn:host}/", "per-grant fields are written"),
        ("https://{ask:a}.{ask:a}.example/", "twice"),
        ("https://{ask:host/", "per-grant fields are written"),
        ("http://{ask:host}.example/", "must use https"),
        ("https://user@{ask:host}.example/", "user name"),
    ],
)
def test_malformed_templates_are_refused_where_connections_are_configured(template, message):
    with pytest.raises(ConfigurationError, match=message) as caught:
        validate_configuration({"api_base_url": template}, has_secret=True)
    assert caught.value.details["field"] == "api_base_url"


def test_the_salesforce_preset_calls_the_instance_url():
    preset = get_preset("salesforce").resolve()
    defaults = preset.connection_defaults()
    assert defaults["api_base_url"] == "{token:instance_url}/services/data/"
    validate_configuration(
        {**preset.provider_fields(), **defaults, "grant_type": "client_credentials"},
        has_secret=True,
    )
    values = {"instance_url": "https://acme.my.salesforce.com"}
    assert resolve(defaults["api_base_url"], values) == (
        "https://acme.my.salesforce.com/services/data/"
    )


def test_an_http_template_is_for_loopback_development_only(settings):
    template = {"api_base_url": "http://{ask:host}:8000/api/"}
    validate_configuration(template, has_secret=True)
    settings.OAUTHCONN = {**settings.OAUTHCONN, "ALLOW_INSECURE_LOOPBACK": False}
    with pytest.raises(ConfigurationError, match="ALLOW_INSECURE_LOOPBACK"):
        validate_configuration(template, has_secret=True)


def test_client_credentials_cannot_ask():
    values = {"api_base_url": "https://{ask:host}.example/", "grant_type": "client_credentials"}
    with pytest.raises(ConfigurationError, match="Client credentials connect without a form"):
        validate_configuration(values, has_secret=True)
    values["api_base_url"] = "{token:instance_url}/api/"
    validate_configuration(values, has_secret=True)


def test_typed_values_are_refused_by_the_flow_too(staff, make_connection):
    from django.contrib.sessions.backends.db import SessionStore

    from oauthconn.flows.authorization import start_authorization

    connection = templated(make_connection, "https://{ask:tenant}.example.com/api/")
    with pytest.raises(GrantValueRefused, match="Tenant must be a host name") as caught:
        start_authorization(
            connection, user=staff, session=SessionStore(), asked={"tenant": "x/../../admin"}
        )
    assert caught.value.details["field"] == "tenant"
    assert not PendingAuthorization.objects.exists()


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("https://Acme.My.Salesforce.com", "https://acme.my.salesforce.com"),
        ("https://acme.my.salesforce.com/", "https://acme.my.salesforce.com"),
        ("https://acme.example:8443", "https://acme.example:8443"),
        ("  https://acme.example  ", "https://acme.example"),
    ],
)
def test_an_origin_value_is_stored_normalised(sent, stored):
    values = values_for_grant(
        "{token:instance_url}/api/", response={"instance_url": sent}, asked={}
    )
    assert values == {"instance_url": stored}
    assert resolve("{token:instance_url}/api/", values) == f"{stored}/api/"

"""The "Add connection" wizard: every step's validation, back and forward, the sealed secret,
discovery failures (real endpoints on scripted_server), permissions and CSRF."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import Permission
from django.contrib.sessions.backends.db import SessionStore
from django.http import QueryDict
from django.urls import reverse
from oauth2_provider.models import Application

from oauthconn.admin.wizard import SealedSessionStorage
from oauthconn.crypto import Sealed
from oauthconn.models import Connection, GrantType, Provider, TokenStatus
from tests.conftest import consent, deliver
from tests.scripted_server import Reply

ADD = reverse("admin:oauthconn_connection_add")
PREFIX = "connection_wizard"
SECRET = "wizard-s3cret-Zq9!"


def step(client, step_name: str, **fields):
    data = {f"{PREFIX}-current_step": step_name}
    data.update({f"{step_name}-{key}": value for key, value in fields.items()})
    return client.post(ADD, data)


def errors(response, step_name: str) -> dict:
    form = response.context["wizard"]["form"]
    assert response.context["wizard"]["steps"].current == step_name
    return form.errors


def basics(client, **fields):
    values = {"name": "CRM", "slug": "", "sharing": "shared", "source": "custom"}
    values.update(fields)
    return step(client, "basics", **values)


def client_step(client, base: str = "https://as.example", **fields):
    values = {
        "client_id": "abc",
        "client_secret": SECRET,
        "client_auth_method": "client_secret_basic",
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "revocation_endpoint": "",
        "userinfo_endpoint": "",
        "scopes": "read write",
        "extra_authorize_params": "{}",
        "extra_token_params": "{}",
        "api_base_url": f"{base}/api/",
        "test_path": "me/",
    }
    values.update(fields)
    return step(client, "client", **values)


@pytest.fixture
def wizard(staff_client):
    response = staff_client.get(ADD)
    assert response.status_code == 200
    return staff_client


# --- step 1 -----------------------------------------------------------------------------------


def test_first_page_is_the_wizard_inside_the_admin(wizard):
    response = wizard.get(ADD)
    html = response.content.decode()
    assert 'class="breadcrumbs"' in html and "Add connection" in html
    assert response.context["wizard"]["steps"].current == "basics"
    assert response["X-Frame-Options"] == "DENY"


def test_basics_requires_a_name_and_a_source(wizard):
    response = step(wizard, "basics", name="", source="")
    found = errors(response, "basics")
    assert "name" in found and "source" in found


def test_slug_is_derived_from_the_name_and_must_be_unused(wizard, db):
    response = basics(wizard, name="My CRM")
    assert response.context["wizard"]["steps"].current == "grant"
    assert wizard.session[f"wizard_{PREFIX}"]["step_data"]["basics"]["basics-name"] == ["My CRM"]
    provider = Provider.objects.create(slug="p", name="P", token_endpoint="https://as.example/t")
    Connection.objects.create(slug="my-crm", name="x", provider=provider, client_id="c")
    found = errors(basics(wizard, name="My CRM"), "basics")
    assert "already exists" in found["slug"][0]


def test_preset_needs_a_choice_and_a_valid_parameter(wizard):
    assert "preset" in errors(basics(wizard, source="preset", preset=""), "basics")
    found = errors(
        basics(wizard, source="preset", preset="microsoft", preset_parameter="evil.example/x"),
        "basics",
    )
    assert "not allowed" in found["preset_parameter"][0]


def test_a_preset_prefills_the_client_step(wizard):
    basics(wizard, source="preset", preset="github")
    response = step(wizard, "grant", grant_type=GrantType.AUTHORIZATION_CODE_PKCE)
    form = response.context["wizard"]["form"]
    assert form["token_endpoint"].value() == "https://github.com/login/oauth/access_token"
    assert form["api_base_url"].value() == "https://api.github.com/"
    assert form["scopes"].value() == "read:user"
    assert form["client_auth_method"].value() == "client_secret_post"


# --- step 2 -----------------------------------------------------------------------------------


def test_only_grants_the_provider_supports_are_offered(wizard):
    basics(wizard, source="preset", preset="slack")  # Slack: authorization code only
    response = step(wizard, "grant", grant_type=GrantType.CLIENT_CREDENTIALS)
    found = errors(response, "grant")
    assert found["grant_type"] == ["The provider does not support this grant type."]
    offered = [c[0] for c in response.context["wizard"]["form"].fields["grant_type"].choices]
    assert offered == [GrantType.AUTHORIZATION_CODE]


def test_each_grant_has_a_line_saying_when_to_use_it(wizard):
    response = basics(wizard)
    html = response.content.decode()
    assert "recommended for all clients" in html and "cannot keep a secret" in html
    assert "without a user" in html


# --- step 3 -----------------------------------------------------------------------------------


@pytest.fixture
def at_client_step(wizard):
    basics(wizard)
    step(wizard, "grant", grant_type=GrantType.AUTHORIZATION_CODE_PKCE)
    return wizard


def test_client_step_shows_the_redirect_uri_read_only(at_client_step):
    response = client_step(at_client_step, client_id="")
    html = response.content.decode()
    assert 'readonly value="http://testserver/oauthconn/callback/crm/"' in html
    assert 'data-copy="#oauthconn-redirect-uri"' in html
    assert "client_id" in errors(response, "client")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("token_endpoint", "http://as.example/token", "must use https"),
        ("token_endpoint", "https://u:p@as.example/token", "user name or password"),
        ("authorization_endpoint", "https://as.example/a#x", "fragment"),
        ("api_base_url", "ftp://as.example/", "must use https"),
        ("token_endpoint", "", "required"),
        ("authorization_endpoint", "", "needs this endpoint"),
        ("client_secret", "", "Enter the client secret"),
        ("extra_authorize_params", '{"state": "x"}', "protocol parameter"),
        ("extra_authorize_params", '["a"]', "JSON object"),
        ("extra_token_params", '{"redirect_uri": "https://x"}', "protocol parameter"),
    ],
)
def test_client_step_rejects_bad_input(at_client_step, field, value, message):
    found = errors(client_step(at_client_step, **{field: value}), "client")
    assert message in " ".join(found[field])


def test_http_loopback_needs_the_development_switch(at_client_step, settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "ALLOW_INSECURE_LOOPBACK": False}
    found = errors(client_step(at_client_step, base="http://127.0.0.1:9000"), "client")
    assert "ALLOW_INSECURE_LOOPBACK" in found["token_endpoint"][0]
    settings.OAUTHCONN = {**settings.OAUTHCONN, "ALLOW_INSECURE_LOOPBACK": True}
    response = client_step(at_client_step, base="http://127.0.0.1:9000")
    assert response.context["wizard"]["steps"].current == "review"
    found = errors(client_step_back(at_client_step, base="http://10.0.0.5"), "client")
    assert "must use https" in found["token_endpoint"][0]


def client_step_back(client, **kwargs):
    client.post(ADD, {f"{PREFIX}-current_step": "review", "wizard_goto_step": "client"})
    return client_step(client, **kwargs)


def test_public_client_only_with_pkce(wizard):
    basics(wizard)
    step(wizard, "grant", grant_type=GrantType.AUTHORIZATION_CODE)
    found = errors(client_step(wizard, client_auth_method="none", client_secret=""), "client")
    assert "PKCE" in found["client_auth_method"][0]


def test_one_issuer_means_one_server(wizard, db):
    Provider.objects.create(
        slug="gitlab-old",
        name="Old GitLab",
        issuer="https://gitlab.com",
        authorization_endpoint="https://gitlab.com/oauth/authorize",
        token_endpoint="https://gitlab.example/oauth/token",
    )
    basics(wizard, source="preset", preset="gitlab")
    step(wizard, "grant", grant_type=GrantType.AUTHORIZATION_CODE_PKCE)
    response = client_step(
        wizard,
        authorization_endpoint="https://gitlab.com/oauth/authorize",
        token_endpoint="https://gitlab.com/oauth/token",
    )
    found = errors(response, "client")
    assert "one issuer must mean one authorization server" in found["__all__"][0]
    response = client_step(
        wizard,
        authorization_endpoint="https://gitlab.com/oauth/authorize",
        token_endpoint="https://gitlab.example/oauth/token",
    )
    assert response.context["wizard"]["steps"].current == "review"


# --- the secret in the session, back and forward -------------------------------------------


def test_the_typed_secret_is_never_in_the_session_in_plaintext(at_client_step):
    response = client_step(at_client_step)
    assert response.context["wizard"]["steps"].current == "review"
    session = at_client_step.session
    raw = json.dumps(session[f"wizard_{PREFIX}"])
    assert SECRET not in raw
    stored = session[f"wizard_{PREFIX}"]["step_data"]["client"]["client-client_secret"][0]
    assert stored != SECRET and Sealed(stored).reveal() == SECRET  # ciphertext of the keyring
    assert "Client secret" in response.content.decode()
    assert SECRET not in response.content.decode()


def test_the_storage_seals_secrets_itself(rf):
    """No caller has to prepare anything: set_step_data alone keeps the secret sealed."""
    request = rf.post(ADD)
    request.session = SessionStore()
    storage = SealedSessionStorage(PREFIX, request)
    typed = QueryDict(mutable=True)
    typed.update({"client-client_id": "abc", "client-client_secret": SECRET})

    storage.set_step_data("client", typed)
    raw = request.session[f"wizard_{PREFIX}"]["step_data"]["client"]
    assert SECRET not in json.dumps(raw)
    assert raw["client-client_id"] == ["abc"]
    assert storage.get_step_data("client")["client-client_secret"] == SECRET

    # Stored again with the field left empty (the password widget): the sealed one is kept.
    sealed = raw["client-client_secret"]
    storage.set_step_data("client", QueryDict("client-client_id=xyz&client-client_secret="))
    raw = request.session[f"wizard_{PREFIX}"]["step_data"]["client"]
    assert raw["client-client_secret"] == sealed and raw["client-client_id"] == ["xyz"]
    assert storage.has_secret("client")
    # A plain dict (not a QueryDict) is sealed as well.
    storage.set_step_data("client", {"client-client_secret": "other-s3cret"})
    assert "other-s3cret" not in json.dumps(request.session[f"wizard_{PREFIX}"])
    assert storage.get_step_data("client")["client-client_secret"] == "other-s3cret"
    # What 0.1.0 stored (a wizard left open across the upgrade) still reads.
    legacy = "sealed:" + Sealed.seal(SECRET).ciphertext
    request.session[f"wizard_{PREFIX}"]["step_data"]["client"]["client-client_secret"] = [legacy]
    assert storage.get_step_data("client")["client-client_secret"] == SECRET


def test_back_and_forward_keep_what_was_typed(at_client_step):
    client_step(at_client_step, client_id="kept-id", scopes="a b")
    response = at_client_step.post(
        ADD, {f"{PREFIX}-current_step": "review", "wizard_goto_step": "client"}
    )
    form = response.context["wizard"]["form"]
    assert form["client_id"].value() == "kept-id" and form["scopes"].value() == "a b"
    assert SECRET not in response.content.decode()  # the password widget never renders it
    response = at_client_step.post(
        ADD, {f"{PREFIX}-current_step": "client", "wizard_goto_step": "basics"}
    )
    assert response.context["wizard"]["form"]["name"].value() == "CRM"
    # Forward again without retyping the secret: the sealed one is kept.
    basics(at_client_step)
    step(at_client_step, "grant", grant_type=GrantType.AUTHORIZATION_CODE_PKCE)
    response = client_step(at_client_step, client_id="kept-id", client_secret="")
    assert response.context["wizard"]["steps"].current == "review"
    assert response.context["review"]["client"]["client_secret"] == "set"


def test_review_shows_everything_and_the_secret_only_as_set(at_client_step):
    response = client_step(at_client_step)
    html = response.content.decode()
    assert 'value="Save and authorize"' in html
    assert "https://as.example/token" in html and "<code>abc</code>" in html
    assert '<dd class="oauthconn-secret">set</dd>' in html
    assert SECRET not in html


# --- discovery failures (real endpoints) ------------------------------------------------------


@pytest.mark.parametrize(
    "reply, message",
    [
        (Reply(status=200, body="<html>hi</html>", headers={"Content-Type": "text/html"}), "JSON"),
        (Reply(status=200, body={"issuer": "https://evil.example"}), "issuer"),
    ],
)
def test_discovery_failure_is_an_error_on_step_one(wizard, scripted_server, reply, message):
    issuer = scripted_server.url("/tenant")
    for path in (
        "/.well-known/openid-configuration",
        "/tenant/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/tenant",
    ):
        scripted_server.default(path, reply)
    found = errors(basics(wizard, source="issuer", issuer=issuer), "basics")
    assert found["issuer"][0].startswith("Discovery failed")
    assert message.lower() in found["issuer"][0].lower()
    assert not Provider.objects.exists()


def test_discovery_of_an_unreachable_issuer(wizard, unused_port):
    found = errors(
        basics(wizard, source="issuer", issuer=f"http://127.0.0.1:{unused_port}"), "basics"
    )
    assert found["issuer"][0].startswith("Discovery failed")


def test_discovered_metadata_is_shown_before_use(wizard, scripted_server):
    issuer = scripted_server.url("")
    document = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "response_types_supported": ["code"],
    }
    scripted_server.default("/.well-known/openid-configuration", Reply(body=document))
    scripted_server.default("/.well-known/oauth-authorization-server", Reply(body=document))
    response = basics(wizard, source="issuer", issuer=issuer)
    assert errors(response, "grant") == {}
    html = response.content.decode()
    assert "Provider metadata (discovered)" in html and f"{issuer}/token" in html
    offered = [c[0] for c in response.context["wizard"]["form"].fields["grant_type"].choices]
    assert GrantType.CLIENT_CREDENTIALS not in offered
    assert not Provider.objects.exists()  # nothing saved before the review


# --- permissions and CSRF ---------------------------------------------------------------------


def test_staff_without_add_permission_gets_403(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(ADD).status_code == 403


def test_a_post_without_csrf_token_is_refused(staff, db):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff)
    response = browser.post(ADD, {f"{PREFIX}-current_step": "basics", "basics-name": "x"})
    assert response.status_code == 403


# --- the whole wizard against the real authorization server ---------------------------------


def test_wizard_creates_a_pkce_connection_and_authorizes_it(wizard, live_server, as_log):
    base = live_server.url
    basics(wizard, name="Demo", source="preset", preset="demo", preset_parameter=base)
    step(wizard, "grant", grant_type=GrantType.AUTHORIZATION_CODE_PKCE)
    client_step(
        wizard,
        base=f"{base}/demo-oauth",
        client_id="wizard-client",
        api_base_url=f"{base}/demo-api/",
        authorization_endpoint=f"{base}/demo-oauth/authorize/",
        token_endpoint=f"{base}/demo-oauth/token/",
        revocation_endpoint=f"{base}/demo-oauth/revoke_token/",
    )
    connection_uri = "http://testserver/oauthconn/callback/demo/"
    Application.objects.create(
        name="wizard",
        client_id="wizard-client",
        client_secret=SECRET,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=connection_uri,
        skip_authorization=True,
        algorithm="",
    )
    response = step(wizard, "review")
    assert response.status_code == 302
    assert urlsplit(response["Location"]).path == "/demo-oauth/authorize/"
    connection = Connection.objects.get(slug="demo")
    assert connection.client_secret.reveal() == SECRET
    assert connection.provider.preset == "demo"
    assert (
        f"wizard_{PREFIX}" not in wizard.session
        or not wizard.session[f"wizard_{PREFIX}"]["step_data"]
    )
    landed = deliver(wizard, connection, consent(wizard, response["Location"]))
    assert landed.status_code == 303
    token = connection.tokens.get()
    assert token.status == TokenStatus.ACTIVE and token.access_token is not None
    assert as_log.to("/demo-oauth/token/")[0].form["code_verifier"]


def test_client_credentials_save_fetches_a_token_at_once(wizard, live_server):
    base = live_server.url
    basics(wizard, name="Service", source="custom")
    step(wizard, "grant", grant_type=GrantType.CLIENT_CREDENTIALS)
    client_step(
        wizard,
        client_id="svc",
        authorization_endpoint="",
        token_endpoint=f"{base}/demo-oauth/token/",
        api_base_url=f"{base}/demo-api/",
    )
    Application.objects.create(
        name="svc",
        client_id="svc",
        client_secret=SECRET,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        algorithm="",
    )
    response = step(wizard, "review")
    connection = Connection.objects.get(slug="service")
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:oauthconn_connection_change", args=[connection.pk]
    )
    assert connection.tokens.get().access_token is not None
    page = wizard.get(response["Location"]).content.decode()
    assert "a token obtained" in page and "Connected" in page


# --- saving -----------------------------------------------------------------------------------


def test_per_user_connection_is_saved_without_authorizing(wizard):
    basics(wizard, sharing="per_user")
    step(wizard, "grant", grant_type=GrantType.AUTHORIZATION_CODE_PKCE)
    response = client_step(wizard)
    assert 'value="Save"' in response.content.decode()
    response = step(wizard, "review")
    connection = Connection.objects.get(slug="crm")
    assert connection.per_user
    assert response["Location"] == reverse(
        "admin:oauthconn_connection_change", args=[connection.pk]
    )


def test_a_public_client_keeps_no_secret(wizard):
    basics(wizard)
    step(wizard, "grant", grant_type=GrantType.AUTHORIZATION_CODE_PKCE)
    client_step(wizard, client_auth_method="none")  # a secret was typed, then "none" chosen
    step(wizard, "review")
    connection = Connection.objects.get(slug="crm")
    assert connection.client_secret is None and connection.client_auth_method == "none"


def test_without_authorize_permission_the_connection_is_only_saved(client, django_user_model):
    user = django_user_model.objects.create_user("maker", password="pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_connection", "view_connection"])
    )
    client.force_login(user)
    client.get(ADD)
    basics(client)
    step(client, "grant", grant_type=GrantType.AUTHORIZATION_CODE_PKCE)
    client_step(client)
    response = step(client, "review")
    connection = Connection.objects.get(slug="crm")
    assert response["Location"] == reverse(
        "admin:oauthconn_connection_change", args=[connection.pk]
    )
    assert not connection.tokens.exists()


def test_revalidation_error_returns_to_the_step_that_has_it(at_client_step):
    client_step(at_client_step)
    provider = Provider.objects.create(slug="p", name="P", token_endpoint="https://as.example/t")
    Connection.objects.create(slug="crm", name="taken meanwhile", provider=provider, client_id="c")
    response = step(at_client_step, "review")
    assert response.status_code == 200
    assert "already exists" in errors(response, "basics")["slug"][0]
    assert Connection.objects.count() == 1


def test_discovery_fills_the_client_step_and_limits_grants(wizard, scripted_server):
    issuer = scripted_server.url("")
    document = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "grant_types_supported": ["implicit"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "response_types_supported": ["code"],
    }
    scripted_server.default("/.well-known/openid-configuration", Reply(body=document))
    scripted_server.default("/.well-known/oauth-authorization-server", Reply(body=document))
    response = basics(wizard, source="issuer", issuer=issuer)
    assert response.context["wizard"]["form"].fields["grant_type"].choices == []
    found = errors(step(wizard, "grant"), "grant")
    assert "supports none of the grant types" in found["__all__"][0]
    document["grant_types_supported"] = ["authorization_code", "client_credentials"]
    wizard.get(ADD)  # a fresh wizard discovers again
    assert errors(basics(wizard, source="issuer", issuer=issuer), "grant") == {}
    response = step(wizard, "grant", grant_type=GrantType.AUTHORIZATION_CODE)
    form = response.context["wizard"]["form"]
    assert form["token_endpoint"].value() == f"{issuer}/token"
    assert form["client_auth_method"].value() == "client_secret_post"


def test_an_existing_provider_keeps_its_endpoints(wizard, db):
    provider = Provider.objects.create(
        slug="as",
        name="AS",
        authorization_endpoint="https://as.example/authorize",
        token_endpoint="https://as.example/token",
    )
    basics(wizard, source="existing", existing_provider=provider.pk)
    response = step(wizard, "grant", grant_type=GrantType.AUTHORIZATION_CODE_PKCE)
    assert response.context["wizard"]["form"].fields["token_endpoint"].disabled
    # A posted endpoint is ignored: the provider is shared, it is edited on its own page.
    client_step(wizard, token_endpoint="https://evil.example/token")
    step(wizard, "review")
    connection = Connection.objects.get(slug="crm")
    assert connection.provider == provider
    provider.refresh_from_db()
    assert provider.token_endpoint == "https://as.example/token"
    assert Provider.objects.count() == 1

"""The REST API without a provider: permissions, write-only secrets, validation, R5, errors."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.contrib.auth.models import Permission
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from rest_framework.test import APIClient

from oauthconn.flows.keys import generate_key_pair, public_jwk_for
from oauthconn.models import ClientAuthMethod, Connection, Event, Provider, Token, TokenStatus

pytestmark = pytest.mark.django_db

API = "/api/oauthconn"
SECRET = "s3cret-value-never-shown"


@pytest.fixture
def provider() -> Provider:
    return Provider.objects.create(
        slug="as",
        name="AS",
        authorization_endpoint="https://as.example/authorize",
        token_endpoint="https://as.example/token",
        revocation_endpoint="https://as.example/revoke",
    )


@pytest.fixture
def connection(provider) -> Connection:
    return Connection.objects.create(
        slug="crm", name="CRM", provider=provider, client_id="cid", client_secret=SECRET
    )


def grant(connection: Connection, owner=None, **fields) -> Token:
    """A stored grant, as the callback would leave it."""
    fields = {"access_token": "at-value", "refresh_token": "rt-value", **fields}
    return Token.objects.create(connection=connection, owner=owner, scope="read", **fields)


@pytest.fixture
def api(staff) -> APIClient:
    client = APIClient()
    client.force_login(staff)
    return client


def user_client(django_user_model, name: str, *perms: str, staff: bool = False) -> APIClient:
    user = django_user_model.objects.create_user(name, password="pw", is_staff=staff)
    for perm in perms:
        user.user_permissions.add(Permission.objects.get(codename=perm))
    client = APIClient()
    client.force_login(user)
    return client


def connection_body(**fields) -> dict:
    return {
        "slug": "new",
        "name": "New",
        "provider": "as",
        "client_id": "id",
        "client_secret": SECRET,
        **fields,
    }


# --- permissions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/providers/", "/connections/", "/me/connections/", "/connections/1/"]
)
def test_anonymous_gets_nothing(path, connection):
    response = APIClient().get(API + path)
    assert response.status_code == 403
    assert response.json()["code"] == "not_authenticated"


def test_users_without_staff_status_cannot_manage(django_user_model, connection):
    client = user_client(django_user_model, "u", "view_connection", "view_provider")
    assert client.get(f"{API}/connections/").status_code == 403
    assert client.get(f"{API}/providers/").status_code == 403
    assert client.get(f"{API}/me/connections/").status_code == 200


def test_staff_need_the_model_permission_for_each_method(django_user_model, connection):
    nothing = user_client(django_user_model, "a", staff=True)
    viewer = user_client(django_user_model, "b", "view_connection", staff=True)
    adder = user_client(django_user_model, "c", "view_connection", "add_connection", staff=True)

    assert nothing.get(f"{API}/connections/").status_code == 403
    assert viewer.get(f"{API}/connections/").status_code == 200
    assert viewer.post(f"{API}/connections/", connection_body()).status_code == 403
    assert viewer.patch(f"{API}/connections/{connection.pk}/", {"name": "x"}).status_code == 403
    assert viewer.delete(f"{API}/connections/{connection.pk}/").status_code == 403
    assert adder.post(f"{API}/connections/", connection_body()).status_code == 201


@pytest.mark.parametrize("action", ["authorize", "refresh", "test", "disconnect"])
def test_actions_need_their_own_permission_not_change(django_user_model, connection, action):
    client = user_client(
        django_user_model,
        "e",
        "view_connection",
        "add_connection",
        "change_connection",
        staff=True,
    )
    response = client.post(f"{API}/connections/{connection.pk}/{action}/")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_permission_classes_are_a_setting_read_per_request(django_user_model, settings, connection):
    client = user_client(django_user_model, "plain")
    assert client.get(f"{API}/connections/").status_code == 403
    settings.OAUTHCONN = {
        **settings.OAUTHCONN,
        "API_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    }
    assert client.get(f"{API}/connections/").status_code == 200


def test_an_unimportable_permission_class_names_the_setting(api, settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "API_PERMISSION_CLASSES": ["nowhere.Nothing"]}
    with pytest.raises(ImproperlyConfigured, match="API_PERMISSION_CLASSES.*nowhere.Nothing"):
        api.get(f"{API}/providers/")


def test_session_authentication_needs_csrf_for_unsafe_methods(staff, provider):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post(f"{API}/connections/", connection_body(), format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    assert not Connection.objects.exists()

    client.get("/accounts/login/")  # a page of the site with a form sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post(
        f"{API}/connections/", connection_body(), format="json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 201


# --- secrets are write-only, tokens never serialized ---------------------------------------------


def test_client_secret_is_write_only(api, provider):
    response = api.post(f"{API}/connections/", connection_body(), format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert "client_secret" not in body and body["has_client_secret"] is True
    assert Connection.objects.get(slug="new").client_secret.reveal() == SECRET
    for page in (f"{API}/connections/", f"{API}/connections/{body['id']}/"):
        assert SECRET.encode() not in api.get(page).content
        assert SECRET.encode() not in api.get(page, HTTP_ACCEPT="text/html").content
    assert SECRET.encode() not in api.options(f"{API}/connections/").content


def test_an_omitted_or_empty_secret_keeps_the_stored_one(api, connection):
    api.patch(f"{API}/connections/{connection.pk}/", {"name": "CRM 2"}, format="json")
    api.patch(f"{API}/connections/{connection.pk}/", {"client_secret": ""}, format="json")
    connection.refresh_from_db()
    assert connection.name == "CRM 2"
    assert connection.client_secret.reveal() == SECRET

    api.patch(f"{API}/connections/{connection.pk}/", {"client_secret": "new"}, format="json")
    connection.refresh_from_db()
    assert connection.client_secret.reveal() == "new"


def test_private_key_is_write_only_and_must_be_a_pem_key(api, provider):
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    body = connection_body(client_auth_method="private_key_jwt", client_secret="")
    bad = api.post(f"{API}/connections/", {**body, "private_key": "not a key"}, format="json")
    assert bad.status_code == 400 and "private_key" in bad.json()["fields"]

    good = api.post(f"{API}/connections/", {**body, "private_key": pem}, format="json")
    assert good.status_code == 201, good.json()
    assert "private_key" not in good.json() and good.json()["has_private_key"] is True
    assert b"PRIVATE KEY" not in api.get(f"{API}/connections/").content


def test_token_values_are_never_serialized(api, staff, provider, connection):
    grant(connection, access_token="AT-SHARED-xyz", refresh_token="RT-SHARED-xyz", id_token="ID-x")
    mine = Connection.objects.create(slug="g", name="G", provider=provider, per_user=True)
    grant(mine, owner=staff, access_token="AT-MINE-xyz", refresh_token="RT-MINE-xyz")

    pages = [
        f"{API}/connections/",
        f"{API}/connections/{connection.pk}/",
        f"{API}/connections/{mine.pk}/",
        f"{API}/me/connections/",
        f"{API}/me/connections/g/",
    ]
    for page in pages:
        for accept in ("application/json", "text/html"):  # the browsable API too
            content = api.get(page, HTTP_ACCEPT=accept).content
            assert b"-xyz" not in content and b"ID-x" not in content, (page, accept)
    detail = api.get(f"{API}/connections/{connection.pk}/").json()["token"]
    assert detail["connected"] is True and detail["granted_scopes"] == ["read"]
    assert not {"access_token", "refresh_token", "id_token"} & set(detail)


# --- validation names the field ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"grant_type": "password"}, "grant_type"),  # R7
        ({"grant_type": "implicit"}, "grant_type"),
        ({"api_base_url": "http://api.example/"}, "api_base_url"),
        ({"api_base_url": "https://user:pw@api.example/"}, "api_base_url"),
        ({"extra_authorize_params": {"state": "x"}}, "extra_authorize_params"),
        ({"extra_token_params": {"audience": ["a"]}}, "extra_token_params"),
        ({"client_secret": ""}, "client_secret"),
        ({"client_auth_method": "none", "grant_type": "authorization_code"}, "client_auth_method"),
        ({"provider": "nope"}, "provider"),
        ({"slug": "not a slug"}, "slug"),
    ],
)
def test_invalid_connections_are_refused_naming_the_field(api, provider, fields, field):
    response = api.post(f"{API}/connections/", connection_body(**fields), format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid" and field in body["fields"], body
    assert field in body["detail"]
    assert not Connection.objects.exists()


def test_configuration_errors_read_as_in_the_admin(api, provider, staff_client):
    """One rule, one message: the API and the admin's change form both say it the same way."""
    body = connection_body(client_auth_method="none", grant_type="authorization_code")
    refused = api.post(f"{API}/connections/", body, format="json").json()
    connection = Connection.objects.create(
        slug="pub", name="Pub", provider=provider, client_id="c", client_auth_method="none"
    )
    page = staff_client.post(
        reverse("admin:oauthconn_connection_change", args=[connection.pk]),
        {
            "name": "Pub",
            "slug": "pub",
            "provider": provider.pk,
            "grant_type": "authorization_code",
            "client_id": "c",
            "client_auth_method": "none",
            "extra_authorize_params": "{}",
            "extra_token_params": "{}",
        },
    )
    (message,) = refused["fields"]["client_auth_method"]
    assert message.startswith("A public client (no client authentication) must use the code")
    assert page.context["adminform"].form.errors["client_auth_method"] == [message]


def test_a_public_pkce_client_needs_no_secret_and_keeps_none(api, provider):
    body = connection_body(client_auth_method=ClientAuthMethod.NONE, client_secret=SECRET)
    response = api.post(f"{API}/connections/", body, format="json")
    assert response.status_code == 201, response.json()
    assert Connection.objects.get().client_secret is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("token_endpoint", "http://as.example/token"),
        ("authorization_endpoint", "ftp://as.example/"),
        ("issuer", "https://as.example/#frag"),
    ],
)
def test_provider_urls_are_checked(api, field, value):
    body = {"slug": "p", "name": "P", "token_endpoint": "https://as.example/t", field: value}
    response = api.post(f"{API}/providers/", body, format="json")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
    assert not Provider.objects.exists()


def test_provider_crud(api, provider):
    created = api.post(
        f"{API}/providers/",
        {"slug": "p2", "name": "P2", "token_endpoint": "https://p2.example/token"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    assert api.get(f"{API}/providers/{pk}/").json()["token_endpoint"] == "https://p2.example/token"
    assert api.patch(f"{API}/providers/{pk}/", {"name": "Two"}, format="json").status_code == 200
    assert [p["slug"] for p in api.get(f"{API}/providers/").json()["results"]] == ["as", "p2"]
    assert api.delete(f"{API}/providers/{pk}/").status_code == 204
    assert not Provider.objects.filter(pk=pk).exists()


def test_one_issuer_means_one_authorization_server(api, provider):
    provider.issuer = "https://as.example"
    provider.save()
    body = {"slug": "twin", "name": "Twin", "issuer": "https://as.example"}

    other = api.post(
        f"{API}/providers/", {**body, "token_endpoint": "https://other.example/t"}, format="json"
    )
    same = api.post(
        f"{API}/providers/",
        {
            **body,
            "authorization_endpoint": provider.authorization_endpoint,
            "token_endpoint": provider.token_endpoint,
        },
        format="json",
    )

    assert other.status_code == 400 and list(other.json()["fields"]) == ["issuer"]
    assert same.status_code == 201, same.json()


def test_provider_endpoints_cannot_move_under_a_stored_secret(api, connection):
    response = api.patch(
        f"{API}/providers/{connection.provider.pk}/",
        {"authorization_endpoint": "https://new.example/a", "name": "Renamed"},
        format="json",
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["authorization_endpoint"]
    assert Provider.objects.get().name == "AS"


def test_a_provider_in_use_cannot_be_deleted(api, connection):
    response = api.delete(f"{API}/providers/{connection.provider.pk}/")
    assert response.status_code == 409
    assert response.json()["code"] == "in_use"
    assert Provider.objects.exists()


# --- R5: moving an authorized connection drops its grant and needs the secret again ---------------


def test_moving_an_authorized_connection_needs_the_secret_again(api, connection):
    token = grant(connection)
    url = f"{API}/connections/{connection.pk}/"

    refused = api.patch(url, {"client_id": "other"}, format="json")

    assert refused.status_code == 400
    assert "client_secret" in refused.json()["fields"]
    connection.refresh_from_db()
    token.refresh_from_db()
    assert connection.client_id == "cid" and token.access_token.reveal() == "at-value"

    accepted = api.patch(url, {"client_id": "other", "client_secret": "again"}, format="json")

    assert accepted.status_code == 200, accepted.json()
    token.refresh_from_db()
    assert token.access_token is None and token.refresh_token is None
    assert token.status == TokenStatus.NEEDS_REAUTH
    assert accepted.json()["token"]["status"] == "needs_reauth"
    assert Event.objects.filter(token=token, kind="needs_reauth").exists()


def test_a_harmless_edit_keeps_the_grant(api, connection):
    token = grant(connection)
    api.patch(f"{API}/connections/{connection.pk}/", {"name": "Renamed"}, format="json")
    token.refresh_from_db()
    assert token.access_token.reveal() == "at-value" and token.status == TokenStatus.ACTIVE


def test_provider_endpoints_cannot_move_under_authorized_connections(api, connection):
    grant(connection)
    provider = connection.provider
    response = api.patch(
        f"{API}/providers/{provider.pk}/",
        {"token_endpoint": "https://attacker.example/token"},
        format="json",
    )
    assert response.status_code == 400
    assert "crm" in response.json()["fields"]["token_endpoint"][0]
    provider.refresh_from_db()
    assert provider.token_endpoint == "https://as.example/token"


# --- lists, filters, pagination, error bodies ---------------------------------------------------


def test_connections_filter_by_provider_kind_and_status(api, provider, connection):
    other = Provider.objects.create(slug="o", name="O", token_endpoint="https://o.example/t")
    Connection.objects.create(slug="b", name="B", provider=other, client_id="x")
    Connection.objects.create(slug="c", name="C", provider=provider, per_user=True)
    grant(connection, status=TokenStatus.FAILING)

    def slugs(query: str) -> list[str]:
        response = api.get(f"{API}/connections/?{query}")
        assert response.status_code == 200, response.json()
        return [c["slug"] for c in response.json()["results"]]

    assert slugs("provider=o") == ["b"]
    assert slugs("per_user=true") == ["c"]
    assert slugs("per_user=false") == ["b", "crm"]
    assert slugs("status=failing") == ["crm"]
    assert slugs("status=not_connected") == ["b", "c"]
    assert slugs("status=active") == []


def test_lists_are_paginated_with_a_page_size_setting(api, provider, settings):
    for n in range(3):
        Connection.objects.create(slug=f"c{n}", name=f"C{n}", provider=provider, client_id="x")
    settings.OAUTHCONN = {**settings.OAUTHCONN, "API_PAGE_SIZE": 2}
    first = api.get(f"{API}/connections/").json()
    assert first["count"] == 3 and len(first["results"]) == 2 and first["next"]
    assert len(api.get(first["next"]).json()["results"]) == 1


def test_bad_filters_are_validation_errors(api):
    response = api.get(f"{API}/connections/?status=sleeping&per_user=maybe")
    assert response.status_code == 400
    assert set(response.json()["fields"]) == {"status", "per_user"}


def test_unknown_ids_are_404_with_a_code(api):
    response = api.get(f"{API}/connections/999/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_acting_on_a_connection_without_a_grant_is_a_conflict(api, connection):
    for action in ("refresh", "disconnect"):
        response = api.post(f"{API}/connections/{connection.pk}/{action}/")
        assert response.status_code == 409, action
        assert response.json()["code"] == "not_connected"


def test_a_grant_needing_reauthorization_says_so(api, connection):
    grant(connection, status=TokenStatus.NEEDS_REAUTH, last_error="The grant was revoked.")
    response = api.post(f"{API}/connections/{connection.pk}/refresh/")
    assert response.status_code == 409
    assert response.json() == {
        "code": "needs_reauthorization",
        "detail": "The grant was revoked.",
    }


def test_connection_list_query_count_does_not_grow_with_the_page(api, provider):
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    def add_connections(count: int) -> None:
        start = Connection.objects.count()
        for i in range(start, start + count):
            made = Connection.objects.create(
                slug=f"c{i}", name=f"C{i}", provider=provider, client_id="id"
            )
            token = grant(made)
            for kind in ("authorized", "refreshed"):
                Event.objects.create(connection=made, token=token, kind=kind)

    def queries_for_list() -> int:
        with CaptureQueriesContext(db) as captured:
            assert api.get("/api/oauthconn/connections/").status_code == 200
        return len(captured)

    add_connections(2)
    few = queries_for_list()
    add_connections(8)
    assert queries_for_list() == few


def test_an_uploaded_private_key_is_published_with_its_kid(api, provider):
    pem, _ = generate_key_pair("EC")
    body = connection_body(client_auth_method="private_key_jwt", client_secret="")
    created = api.post(f"{API}/connections/", {**body, "private_key": pem}, format="json")
    assert created.status_code == 201, created.json()
    connection = Connection.objects.get(pk=created.json()["id"])
    expected = public_jwk_for(load_pem_private_key(pem.encode(), password=None))
    assert connection.private_key_id == expected["kid"]
    served = api.get(f"/oauthconn/jwks/{connection.slug}/").json()["keys"]
    assert served[0]["kid"] == expected["kid"] and served[0]["x"] == expected["x"]

    p384 = ec.generate_private_key(ec.SECP384R1())
    unsupported = p384.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    refused = api.patch(
        f"{API}/connections/{connection.pk}/", {"private_key": unsupported}, format="json"
    )
    assert refused.status_code == 400 and "private_key" in refused.json()["fields"]


def test_private_key_jwt_without_a_key_gets_a_generated_pair(api, provider):
    body = connection_body(client_auth_method="private_key_jwt", client_secret="")
    created = api.post(f"{API}/connections/", body, format="json")
    assert created.status_code == 201, created.json()
    connection = Connection.objects.get(pk=created.json()["id"])
    assert connection.private_key is not None and connection.private_key_id
    assert connection.published_jwks[0]["kid"] == connection.private_key_id


@pytest.mark.parametrize(
    "field, params",
    [
        ("extra_authorize_params", {"a\x00": "x"}),
        ("extra_token_params", {"\x00": ""}),
        ("extra_authorize_params", {"audience\n": "api"}),
        ("extra_token_params", {"audience": "a\x00pi"}),
    ],
)
def test_control_characters_in_extra_parameters_are_refused_not_a_server_error(
    api, provider, field, params
):
    # PostgreSQL cannot store a NUL in JSON: found by schemathesis as a 500 on PostgreSQL.
    response = api.post(
        "/api/oauthconn/connections/", connection_body(**{field: params}), format="json"
    )

    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not Connection.objects.filter(slug="new").exists()


def test_a_provider_slug_with_a_nul_is_unknown_not_a_server_error(api, provider):
    # PostgreSQL cannot compare a string holding a NUL: found by schemathesis as a 500.
    response = api.post(
        "/api/oauthconn/connections/", connection_body(provider="a\x00s"), format="json"
    )

    assert response.status_code == 400
    assert "provider" in response.json()["fields"]
    assert not Connection.objects.filter(slug="new").exists()

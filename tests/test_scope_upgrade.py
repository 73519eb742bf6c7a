"""Asking for more scopes without losing the grant (issue 12, part 4; docs/scopes.md), against
django-oauth-toolkit over real HTTP: the upgrade stores the union, a refusal changes nothing,
a smaller grant is stored as granted and said, and only allowed scopes can be asked for."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection as db_connection
from django.test import Client
from oauth2_provider.models import AccessToken, Application

from oauthconn import get_connection
from oauthconn.exceptions import ScopeNotAllowed, ScopesRequired
from oauthconn.models import Event, PendingAuthorization, Token
from tests.conftest import authorize, consent, deliver, outcome

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def connected(staff_client, make_connection):
    """A shared connection authorized for ``read``, which may later ask for ``write``."""
    connection = make_connection(scopes="read", optional_scopes="write")
    authorize(staff_client, connection)
    return connection


def upgrade_url(connection, *scopes: str, next: str = "") -> str:
    """What site code gets from require_scopes(): the path of our page, not the provider's."""
    with pytest.raises(ScopesRequired) as raised:
        get_connection(connection.slug).require_scopes(scopes, next=next)
    return raised.value.authorize_url


def to_provider(client, path: str) -> str:
    """The person on our page: it asks (GET), they confirm (POST); return the provider URL."""
    question = client.get(path)
    assert question.status_code == 200
    form = question.context["scopes"], question.context["return_to"]
    response = client.post(path, {"scope": " ".join(form[0]), "next": form[1]})
    assert response.status_code == 302, response
    return response["Location"]


def stored_row(token_pk: int) -> tuple:
    """Every column of the grant's row as the database holds it (ciphertexts included)."""
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT * FROM oauthconn_token WHERE id = %s", [token_pk])
        return cursor.fetchone()


def provider_answer(client, authorize_url: str, **changes: str) -> dict[str, list[str]]:
    """The user on DOT's consent page: post its form (``allow`` to agree, a narrower
    ``scope`` to grant less); return the query of the redirect back to us."""
    parts = urlsplit(authorize_url)
    form = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert client.get(parts.path, form).status_code == 200  # the consent page
    answer = client.post(parts.path, {**form, **changes})
    assert answer.status_code == 302
    return parse_qs(urlsplit(answer["Location"]).query)


def test_upgrade_keeps_the_grant_working_and_stores_the_union(staff_client, connected):
    crm = get_connection(connected.slug)
    old = Token.objects.get(connection=connected)
    assert old.scope == "read"

    path = upgrade_url(connected, "write", next="/after/")
    assert path == "/oauthconn/scopes/crm/?scope=write&next=%2Fafter%2F"
    authorize_url = to_provider(staff_client, path)
    query = parse_qs(urlsplit(authorize_url).query)
    assert query["scope"] == ["read write"]
    assert "include_granted_scopes" not in query  # not a Google connection
    (attempt,) = PendingAuthorization.objects.filter(consumed_at__isnull=True)
    assert attempt.scope == "read write"

    # Mid-flow: the old grant is untouched and still calls the API.
    assert stored_row(old.pk) == stored_row(old.pk) and crm.get("me/").status_code == 200
    assert crm.access_token == old.access_token.reveal()
    before = stored_row(old.pk)
    answer = consent(staff_client, authorize_url)
    assert stored_row(old.pk) == before

    response = deliver(staff_client, connected, answer)

    assert response["Location"] == "/after/"
    new = Token.objects.get(connection=connected)
    assert new.pk == old.pk and new.scope == "read write"
    assert new.access_token.reveal() != old.access_token.reveal()
    assert AccessToken.objects.get(token=new.access_token.reveal()).scope == "read write"
    get_connection(connected.slug).require_scopes(["write", "read"])  # held now: returns
    assert get_connection(connected.slug).get("me/").status_code == 200
    event = Event.objects.filter(connection=connected, kind="authorized").first()
    assert event is not None and event.message == "Authorized. Scopes added: write."


def test_a_refusal_leaves_every_column_of_the_old_grant(staff_client, connected):
    old = Token.objects.get(connection=connected)
    before = stored_row(old.pk)
    Application.objects.update(skip_authorization=False)  # DOT asks this time
    authorize_url = to_provider(staff_client, upgrade_url(connected, "write"))

    answer = provider_answer(staff_client, authorize_url)  # no "allow": the user said no
    assert answer["error"] == ["access_denied"]
    page = outcome(staff_client, deliver(staff_client, connected, answer))

    assert page.status_code == 400
    assert b"access_denied" in page.content
    assert stored_row(old.pk) == before
    assert get_connection(connected.slug).get("me/").status_code == 200


def test_a_smaller_grant_is_stored_as_granted_and_said(staff_client, connected):
    Application.objects.update(skip_authorization=False)
    authorize_url = to_provider(staff_client, upgrade_url(connected, "write"))

    answer = provider_answer(staff_client, authorize_url, allow="Authorize", scope="read")
    page = outcome(staff_client, deliver(staff_client, connected, answer))

    assert page.status_code == 200
    assert b"Crm is connected, but Test authorization server did not grant: write." in page.content
    token = Token.objects.get(connection=connected)
    assert token.scope == "read" and token.is_usable
    event = Event.objects.filter(connection=connected, kind="authorized").first()
    assert event is not None and event.message == "Authorized. Scopes not granted: write."
    with pytest.raises(ScopesRequired) as raised:
        get_connection(connected.slug).require_scopes(["write"])
    assert raised.value.missing == ["write"]


def test_require_scopes_raises_with_our_url_and_refuses_what_is_not_allowed(connected):
    crm = get_connection(connected.slug)
    crm.require_scopes(["read"])  # held: nothing raised

    with pytest.raises(ScopesRequired) as raised:
        crm.require_scopes(["read", "write"])
    error = raised.value
    assert error.missing == ["write"] and error.code == "scopes_required"
    assert error.authorize_url == "/oauthconn/scopes/crm/?scope=write"
    assert "state" not in error.authorize_url and "client" not in error.authorize_url
    assert "write" in str(error)

    with pytest.raises(ScopeNotAllowed, match="does not allow requesting admin"):
        crm.require_scopes(["write", "admin"])
    with pytest.raises(ScopeNotAllowed, match="printable ASCII"):
        crm.require_scopes(['wr"ite'])
    assert not PendingAuthorization.objects.filter(consumed_at__isnull=True).exists()


@pytest.mark.parametrize(
    ("scope", "says"),
    [
        ("admin", b"Crm does not allow requesting admin"),
        ("write admin", b"Crm does not allow requesting admin"),
        ('wr"ite', b"printable ASCII"),
        ("", b"Name at least one scope"),
    ],
)
def test_forged_scopes_in_the_query_are_refused(staff_client, connected, scope, says):
    before = stored_row(Token.objects.get(connection=connected).pk)
    path = f"/oauthconn/scopes/{connected.slug}/"

    page = staff_client.get(path, {"scope": scope})
    assert page.status_code == 400 and says in page.content
    assert b"_request_scopes" not in page.content  # no button to press

    posted = staff_client.post(path, {"scope": scope, "next": "/admin/"})
    assert posted.status_code == 303 and posted["Location"] == "/admin/"
    assert says in staff_client.get("/admin/").content  # the message on the next page
    assert not PendingAuthorization.objects.filter(consumed_at__isnull=True).exists()
    assert stored_row(Token.objects.get(connection=connected).pk) == before


def test_asking_creates_nothing_and_starting_needs_post_with_csrf(staff, connected):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(staff)
    path = upgrade_url(connected, "write")

    assert browser.get(path).status_code == 200
    assert browser.post(path, {"scope": "write"}).status_code == 403  # no CSRF token
    assert not PendingAuthorization.objects.filter(consumed_at__isnull=True).exists()
    assert Client().get(path).status_code == 302  # signed out: to the login page


def test_scopes_already_held_start_nothing(staff_client, connected):
    response = staff_client.post(f"/oauthconn/scopes/{connected.slug}/", {"scope": "read"})
    assert response.status_code == 303
    assert not PendingAuthorization.objects.filter(consumed_at__isnull=True).exists()


def test_reauthorizing_keeps_the_added_scopes_until_they_are_no_longer_allowed(
    staff_client, connected
):
    authorize_url = to_provider(staff_client, upgrade_url(connected, "write"))
    deliver(staff_client, connected, consent(staff_client, authorize_url))

    reauthorize = staff_client.post(f"/oauthconn/connect/{connected.slug}/")
    assert parse_qs(urlsplit(reauthorize["Location"]).query)["scope"] == ["read write"]

    connected.optional_scopes = ""
    connected.save()
    reauthorize = staff_client.post(f"/oauthconn/connect/{connected.slug}/")
    assert parse_qs(urlsplit(reauthorize["Location"]).query)["scope"] == ["read"]


def test_a_google_preset_upgrade_sends_include_granted_scopes(staff_client, connected):
    connected.provider.preset = "google"  # DOT stands in for Google's endpoints
    connected.provider.save()

    plain = staff_client.post(f"/oauthconn/connect/{connected.slug}/")["Location"]
    assert "include_granted_scopes" not in parse_qs(urlsplit(plain).query)
    authorize_url = to_provider(staff_client, upgrade_url(connected, "write"))
    assert parse_qs(urlsplit(authorize_url).query)["include_granted_scopes"] == ["true"]

    deliver(staff_client, connected, consent(staff_client, authorize_url))
    assert Token.objects.get(connection=connected).scope == "read write"


def test_a_user_upgrades_only_their_own_grant(client, django_user_model, make_connection):
    drive = make_connection("drive", per_user=True, scopes="read", optional_scopes="write")
    alice = django_user_model.objects.create_user("alice", password="pw")
    bob = django_user_model.objects.create_user("bob", password="pw")
    client.force_login(bob)
    authorize(client, drive)
    bobs = stored_row(Token.objects.get(owner=bob).pk)
    client.force_login(alice)
    authorize(client, drive)
    page = client.get("/oauthconn/")
    assert b'name="scope" value="write"' in page.content  # the row offers the optional scope

    start = client.post(f"/oauthconn/scopes/{drive.slug}/", {"scope": "write"})
    deliver(client, drive, consent(client, start["Location"]))

    assert Token.objects.get(owner=alice).scope == "read write"
    assert stored_row(Token.objects.get(owner=bob).pk) == bobs
    with pytest.raises(ScopesRequired):
        get_connection("drive", owner=bob).require_scopes(["write"])
    get_connection("drive", owner=alice).require_scopes(["write"])
    assert b'name="scope" value="write"' not in client.get("/oauthconn/").content


def test_admin_page_offers_request_more_scopes(staff_client, connected):
    change = f"/admin/oauthconn/connection/{connected.pk}/change/"
    page = staff_client.get(change)
    assert b'name="_request_scopes"' in page.content
    assert b"these may be requested: write" in page.content

    response = staff_client.post(
        f"/oauthconn/scopes/{connected.slug}/", {"scope": "write", "next": change}
    )
    landed = deliver(staff_client, connected, consent(staff_client, response["Location"]))

    assert landed["Location"] == change
    assert Token.objects.get(connection=connected).scope == "read write"


def test_the_api_authorize_action_adds_allowed_scopes_only(staff, connected):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_login(staff)
    url = f"/api/oauthconn/connections/{connected.pk}/authorize/"
    before = stored_row(Token.objects.get(connection=connected).pk)

    refused = api.post(url, {"scopes": ["write", "admin"]}, format="json")
    assert refused.status_code == 400 and refused.json()["code"] == "scope_not_allowed"
    assert not PendingAuthorization.objects.filter(consumed_at__isnull=True).exists()
    assert stored_row(Token.objects.get(connection=connected).pk) == before

    response = api.post(url, {"scopes": ["write"]}, format="json")
    authorize_url = response.json()["authorization_url"]
    assert parse_qs(urlsplit(authorize_url).query)["scope"] == ["read write"]
    deliver(api, connected, consent(api, authorize_url))
    shown = api.get(f"/api/oauthconn/connections/{connected.pk}/").json()
    assert shown["optional_scopes"] == "write"
    assert shown["token"]["granted_scopes"] == ["read", "write"]


def test_a_token_response_without_scope_granted_what_the_upgrade_asked(
    staff_client, connected, scripted_server
):
    from tests.scripted_server import Reply

    authorize_url = to_provider(staff_client, upgrade_url(connected, "write"))
    answer = consent(staff_client, authorize_url)
    reply = {"access_token": "upgraded-token", "token_type": "Bearer", "expires_in": 3600}
    scripted_server.add("/token", Reply(body=reply))  # RFC 6749 §5.1: scope left out
    connected.provider.token_endpoint = scripted_server.url("/token")
    connected.provider.save()

    deliver(staff_client, connected, answer)

    token = Token.objects.get(connection=connected)
    assert token.access_token.reveal() == "upgraded-token"
    assert token.scope == "read write"  # what the attempt asked for, not the connection's


def test_a_failed_token_request_leaves_every_column_of_the_old_grant(
    staff_client, connected, scripted_server
):
    from tests.scripted_server import Reply

    before = stored_row(Token.objects.get(connection=connected).pk)
    authorize_url = to_provider(staff_client, upgrade_url(connected, "write"))
    answer = consent(staff_client, authorize_url)
    scripted_server.add("/token", Reply(status=500, body="<html>down</html>"))
    connected.provider.token_endpoint = scripted_server.url("/token")
    connected.provider.save()

    page = outcome(staff_client, deliver(staff_client, connected, answer))

    assert page.status_code == 502
    assert stored_row(Token.objects.get(connection=connected).pk) == before


def test_the_admin_sets_optional_scopes_as_scope_tokens(staff_client, connected):
    from tests.test_admin_pages import change_data

    url = f"/admin/oauthconn/connection/{connected.pk}/change/"
    refused = staff_client.post(url, change_data(connected, optional_scopes='write "all"'))
    assert refused.status_code == 200 and b"printable ASCII" in refused.content

    saved = staff_client.post(url, change_data(connected, optional_scopes="  write   openid "))
    assert saved.status_code == 302
    connected.refresh_from_db()
    assert connected.optional_scopes == "write openid"


def test_a_plain_authorization_warns_about_added_scopes_only(staff_client, make_connection):
    """Google reports "email" as a URL: a plain sign-in must not warn about the connection's
    own scopes on every callback (the event still lists them)."""
    connection = make_connection(scopes="read write")
    Application.objects.update(skip_authorization=False)
    start = staff_client.post(f"/oauthconn/connect/{connection.slug}/")["Location"]

    answer = provider_answer(staff_client, start, allow="Authorize", scope="read")
    page = outcome(staff_client, deliver(staff_client, connection, answer))

    assert b"Crm is connected." in page.content and b"did not grant" not in page.content
    event = Event.objects.filter(connection=connection, kind="authorized").first()
    assert event is not None and event.message == "Authorized. Scopes not granted: write."

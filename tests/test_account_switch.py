"""Reauthorizing as another account asks before it switches (issue 10, defect 7b).

Against django-oauth-toolkit with OIDC over real HTTP. Two real accounts: the site's browser
(``staff_client``) starts the authorization and receives the callback, and the provider's
consent is given by whichever account is signed in there - staff again, or bob from a second
browser (``bob_at_provider``), so the ID token's ``sub`` really differs.
"""

# ruff: noqa: F811  (the fixtures imported from tests/test_oidc_live.py are named as arguments)
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

from oauthconn import signals
from oauthconn.flows import renew_now
from oauthconn.flows.authorization import BROWSER_SESSION_KEY
from oauthconn.models import Event, EventKind, PendingSwitch, Token
from tests.conftest import authorize, consent, deliver, outcome, start
from tests.test_oidc_live import (  # noqa: F401  (fixtures shared with it)
    issuer,
    oidc_connection,
    oidc_provider,
)


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", "bob@example.com", "pw")


@pytest.fixture
def bob_at_provider(bob) -> Client:
    """A second browser, signed in as bob: it gives the consent at the provider."""
    browser = Client()
    browser.force_login(bob)
    return browser


@pytest.fixture
def connected(staff_client, oidc_connection) -> Token:
    """The shared connection, authorized once by staff's own account."""
    assert authorize(staff_client, oidc_connection).status_code == 303
    return Token.objects.get(connection=oidc_connection)


def reauthorize_as(site_browser, provider_browser, connection):
    """Start in the site's browser, consent as the provider browser's account, come back."""
    return deliver(
        site_browser, connection, consent(provider_browser, start(site_browser, connection))
    )


def newest_at_provider(connection) -> tuple[str, str]:
    """The access and refresh token the provider issued last for ``connection``'s client."""
    access = AccessToken.objects.filter(application__client_id=connection.client_id).latest("id")
    return access.token, RefreshToken.objects.get(access_token=access).token


def same_grant(before: Token) -> bool:
    after = Token.objects.get(pk=before.pk)
    return (
        after.access_token.reveal() == before.access_token.reveal()
        and after.refresh_token.reveal() == before.refresh_token.reveal()
        and after.subject == before.subject
    )


def last_refresh_token_sent(as_log) -> str:
    return as_log.to("/demo-oauth/token/")[-1].form["refresh_token"][0]


def switch_page(response) -> str:
    assert response.status_code == 303
    assert response["Location"].startswith("/oauthconn/switch/"), response["Location"]
    return response["Location"]


def answer(client, page: str, button: str):
    return client.post(page, {button: "1"})


# --- no question -----------------------------------------------------------------------------


def test_first_and_same_account_authorizations_are_stored_without_asking(
    staff_client, oidc_connection
):
    admin_page = reverse("admin:oauthconn_connection_change", args=[oidc_connection.pk])
    assert authorize(staff_client, oidc_connection)["Location"] == admin_page
    first = Token.objects.get(connection=oidc_connection).access_token.reveal()
    assert authorize(staff_client, oidc_connection)["Location"] == admin_page

    assert Token.objects.get(connection=oidc_connection).access_token.reveal() != first
    assert not PendingSwitch.objects.exists()
    messages = [e.message for e in Event.objects.filter(kind=EventKind.AUTHORIZED)]
    assert len(messages) == 2 and not any("account changed" in m for m in messages)


# --- asked, and the old grant works meanwhile -------------------------------------------------


def test_another_account_is_asked_about_and_the_old_grant_keeps_working(
    staff_client, bob_at_provider, oidc_connection, connected, staff, bob, as_log
):
    page = switch_page(reauthorize_as(staff_client, bob_at_provider, oidc_connection))
    new_access, new_refresh = newest_at_provider(oidc_connection)

    assert same_grant(connected)
    response = staff_client.get(page)
    assert response.status_code == 200
    assert response["Referrer-Policy"] == "same-origin"  # never no-referrer: forms must post
    text = response.content.decode()
    assert f">{staff.pk}<" in text and f">{bob.pk}<" in text  # both subjects named
    assert 'name="use_new"' in text and 'name="keep_old"' in text and "csrfmiddlewaretoken" in text
    # No token anywhere: not on the page, not in the session, not in the row in plaintext.
    session = str(dict(staff_client.session.items()))
    with connection.cursor() as cursor:  # the column as stored, not through the field
        cursor.execute("SELECT tokens FROM oauthconn_pendingswitch")
        stored = cursor.fetchone()[0]
    assert stored
    for value in (new_access, new_refresh, connected.access_token.reveal()):
        assert value not in text and value not in session and value not in page
        assert value not in stored

    # Until answered, site code still gets the old account's grant, refreshed with its token.
    renewal = renew_now(oidc_connection)
    assert renewal.renewed and renewal.token.subject == str(staff.pk)
    assert last_refresh_token_sent(as_log) == connected.refresh_token.reveal()


def test_use_the_new_account(
    staff_client, bob_at_provider, oidc_connection, connected, bob, as_log
):
    page = switch_page(reauthorize_as(staff_client, bob_at_provider, oidc_connection))
    new_access, new_refresh = newest_at_provider(oidc_connection)
    heard = []
    receiver = lambda **kwargs: heard.append(kwargs["event"].message)  # noqa: E731
    signals.authorized.connect(receiver)
    try:
        response = answer(staff_client, page, "use_new")
    finally:
        signals.authorized.disconnect(receiver)

    assert response.status_code == 303
    assert response["Location"] == reverse(
        "admin:oauthconn_connection_change", args=[oidc_connection.pk]
    )
    token = Token.objects.get(connection=oidc_connection)
    assert token.subject == str(bob.pk)
    assert token.access_token.reveal() == new_access
    event = Event.objects.filter(kind=EventKind.AUTHORIZED)[0]
    assert f"The account changed from subject {connected.subject} to subject {bob.pk}." in (
        event.message
    )
    assert heard == [event.message]  # the authorized signal, as for any authorization
    # The old refresh token is no longer used: the next refresh sends the new one.
    assert renew_now(oidc_connection).renewed
    sent = last_refresh_token_sent(as_log)
    assert sent == new_refresh != connected.refresh_token.reveal()


def test_keep_the_old_account(staff_client, bob_at_provider, oidc_connection, connected, as_log):
    page = switch_page(reauthorize_as(staff_client, bob_at_provider, oidc_connection))
    new_access, new_refresh = newest_at_provider(oidc_connection)

    response = answer(staff_client, page, "keep_old")

    assert response.status_code == 303
    assert same_grant(connected)
    # The new tokens are revoked at the provider: DOT drops the access token and marks the
    # refresh token revoked.
    assert [r.form["token"][0] for r in as_log.to("/demo-oauth/revoke_token/")] == [
        new_refresh,
        new_access,
    ]
    assert not AccessToken.objects.filter(token=new_access).exists()
    assert RefreshToken.objects.get(token=new_refresh).revoked is not None
    declined = Event.objects.get(kind=EventKind.AUTHORIZATION_FAILED)
    assert declined.data["code"] == "switch_declined"
    assert "revoked at the provider" in declined.message
    followed = staff_client.get(response["Location"])
    assert b"was not used; its access was revoked at the provider" in followed.content
    # The old grant still refreshes.
    assert renew_now(oidc_connection).renewed
    assert last_refresh_token_sent(as_log) == connected.refresh_token.reveal()


# --- refused answers ---------------------------------------------------------------------------


def test_another_browser_or_user_is_refused(
    staff_client, bob_at_provider, oidc_connection, connected, staff, bob
):
    page = switch_page(reauthorize_as(staff_client, bob_at_provider, oidc_connection))
    other_browser = Client()
    other_browser.force_login(staff)
    # Another user in the same browser: bob's session holding staff's browser secret.
    session = bob_at_provider.session
    session[BROWSER_SESSION_KEY] = staff_client.session[BROWSER_SESSION_KEY]
    session.save()

    for client in (other_browser, bob_at_provider):
        for refused in (client.get(page), answer(client, page, "use_new")):
            shown = outcome(client, refused)
            assert shown.status_code == 400
            assert b"belongs to another browser or user" in shown.content

    assert same_grant(connected)
    assert PendingSwitch.objects.get().consumed_at is None  # still the owner's to answer
    assert answer(staff_client, page, "use_new").status_code == 303
    assert Token.objects.get(pk=connected.pk).subject == str(bob.pk)


def test_an_expired_confirmation_is_refused_and_the_new_tokens_revoked(
    staff_client, bob_at_provider, oidc_connection, connected, as_log
):
    page = switch_page(reauthorize_as(staff_client, bob_at_provider, oidc_connection))
    new_access, new_refresh = newest_at_provider(oidc_connection)
    PendingSwitch.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert b"not confirmed in time" in outcome(staff_client, staff_client.get(page)).content
    shown = outcome(staff_client, answer(staff_client, page, "use_new"))

    assert shown.status_code == 400
    assert b"not confirmed in time" in shown.content
    assert same_grant(connected)
    assert not AccessToken.objects.filter(token=new_access).exists()
    assert RefreshToken.objects.get(token=new_refresh).revoked is not None
    assert PendingSwitch.objects.get().tokens is None


def test_a_replayed_confirmation_is_refused(
    staff_client, bob_at_provider, oidc_connection, connected
):
    page = switch_page(reauthorize_as(staff_client, bob_at_provider, oidc_connection))
    assert answer(staff_client, page, "keep_old").status_code == 303

    shown = outcome(staff_client, answer(staff_client, page, "use_new"))

    assert shown.status_code == 400
    assert b"already answered" in shown.content
    assert same_grant(connected)
    assert PendingSwitch.objects.get().tokens is None


def test_confirming_needs_the_permission_to_authorize(
    staff_client, bob_at_provider, oidc_connection, connected, staff
):
    page = switch_page(reauthorize_as(staff_client, bob_at_provider, oidc_connection))
    new_access, _ = newest_at_provider(oidc_connection)
    type(staff).objects.filter(pk=staff.pk).update(is_superuser=False)  # no permission now

    shown = outcome(staff_client, answer(staff_client, page, "use_new"))

    assert shown.status_code == 403
    assert same_grant(connected)
    assert not AccessToken.objects.filter(token=new_access).exists()  # not left valid


def test_a_users_own_grant_is_asked_about_on_the_sites_page(
    client, bob_at_provider, make_connection, oidc_provider, django_user_model, bob
):
    from oauth2_provider.models import Application

    connection = make_connection("mine", provider_=oidc_provider, scopes="openid", per_user=True)
    Application.objects.filter(client_id=connection.client_id).update(algorithm="RS256")
    carol = django_user_model.objects.create_user("carol", "carol@example.com", "pw")
    client.force_login(carol)
    authorize(client, connection)
    before = Token.objects.get(connection=connection, owner=carol)

    page = switch_page(reauthorize_as(client, bob_at_provider, connection))
    shown = client.get(page)
    assert [t.name for t in shown.templates][:2] == [
        "oauthconn/switch_confirm.html",
        "oauthconn/base.html",
    ]
    assert answer(client, page, "use_new")["Location"] == reverse("oauthconn:my_connections")

    after = Token.objects.get(connection=connection, owner=carol)
    assert before.subject == str(carol.pk) and after.subject == str(bob.pk)

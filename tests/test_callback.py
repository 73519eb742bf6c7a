"""Forged, replayed, expired and failed callbacks: a clear error, no token request, nothing
changed."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from oauthconn.models import Event, PendingAuthorization, Provider, Token
from tests.conftest import authorize, consent, deliver, outcome, start

pytestmark = pytest.mark.django_db(transaction=True)


def snapshot(connection):
    return [
        (t.pk, t.access_token.reveal() if t.access_token else None, t.status, t.expires_at)
        for t in Token.objects.filter(connection=connection)
    ]


@pytest.fixture
def connected(staff_client, make_connection, as_log):
    """An already authorized connection, so "nothing changed" has something to keep."""
    connection = make_connection()
    authorize(staff_client, connection)
    as_log.clear()
    return connection


def test_replayed_callback_is_refused(staff_client, connected, as_log):
    query = consent(staff_client, start(staff_client, connected))
    assert deliver(staff_client, connected, query).status_code == 303
    before = snapshot(connected)

    replay = outcome(staff_client, deliver(staff_client, connected, query))

    assert replay.status_code == 400
    assert b"This authorization attempt was already used" in replay.content
    assert len(as_log.to("/demo-oauth/token/")) == 1
    assert snapshot(connected) == before
    # what stays of a used attempt holds no secret: no verifier, no nonce
    used = PendingAuthorization.objects.all()
    assert used and all(a.consumed_at is not None for a in used)
    assert all(a.code_verifier is None and a.nonce is None for a in used)


def test_state_from_another_session_is_refused(staff_client, staff, connected, as_log):
    query = consent(staff_client, start(staff_client, connected))
    before = snapshot(connected)
    other_browser = Client()
    other_browser.force_login(staff)  # even the same user, in another browser

    response = outcome(other_browser, deliver(other_browser, connected, query))

    assert response.status_code == 400
    assert as_log.to("/demo-oauth/token/") == []
    assert snapshot(connected) == before


def test_expired_state_is_refused(staff_client, connected, as_log):
    query = consent(staff_client, start(staff_client, connected))
    PendingAuthorization.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    before = snapshot(connected)

    response = outcome(staff_client, deliver(staff_client, connected, query))

    assert response.status_code == 400
    assert b"expired" in response.content
    assert as_log.to("/demo-oauth/token/") == []
    assert snapshot(connected) == before


def test_state_lifetime_is_a_setting(staff_client, connected, settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "STATE_LIFETIME": 30}
    start(staff_client, connected)
    attempt = PendingAuthorization.objects.get(consumed_at__isnull=True)
    assert attempt.expires_at - attempt.created_at == timedelta(seconds=30)


@pytest.mark.parametrize(
    "query",
    [
        {"code": "abc"},  # no state
        {"state": "forged", "code": "abc"},
        {"state": ""},
        {"state": ["a", "b"], "code": "abc"},
    ],
)
def test_missing_or_forged_state_is_refused(staff_client, connected, as_log, query):
    start(staff_client, connected)
    before = snapshot(connected)
    response = outcome(staff_client, deliver(staff_client, connected, query))
    assert response.status_code == 400
    assert as_log.to("/demo-oauth/token/") == []
    assert snapshot(connected) == before


def test_wrong_issuer_is_refused_before_the_token_request(staff_client, connected, as_log):
    Provider.objects.update(issuer="https://as.example")
    query = consent(staff_client, start(staff_client, connected))
    query["iss"] = ["https://evil.example"]
    before = snapshot(connected)

    response = outcome(staff_client, deliver(staff_client, connected, query))

    assert response.status_code == 400
    assert b"unexpected authorization server" in response.content
    assert as_log.to("/demo-oauth/token/") == []
    assert snapshot(connected) == before
    # the attempt is consumed: the honest iss cannot be tried afterwards
    query["iss"] = ["https://as.example"]
    assert outcome(staff_client, deliver(staff_client, connected, query)).status_code == 400


def test_missing_issuer_is_refused_when_the_provider_sends_it(staff_client, connected, as_log):
    Provider.objects.update(issuer="https://as.example", sends_issuer=True)
    query = consent(staff_client, start(staff_client, connected))
    assert outcome(staff_client, deliver(staff_client, connected, query)).status_code == 400
    assert as_log.to("/demo-oauth/token/") == []


def test_callback_for_another_connection_is_refused(
    staff_client, make_connection, connected, as_log
):
    other = make_connection("other")
    query = consent(staff_client, start(staff_client, connected))
    assert outcome(staff_client, deliver(staff_client, other, query)).status_code == 400
    assert as_log.to("/demo-oauth/token/") == []


def test_access_denied_shows_a_readable_page_and_changes_nothing(staff_client, connected, as_log):
    before = snapshot(connected)
    # the provider's denial carries the state of our attempt
    authorize_url = start(staff_client, connected)
    state = parse_qs(urlsplit(authorize_url).query)["state"][0]
    response = outcome(
        staff_client,
        deliver(
            staff_client,
            connected,
            {
                "error": "access_denied",
                "error_description": "<script>alert(1)</script>",
                "state": state,
            },
        ),
    )

    assert response.status_code == 400
    assert b"Access was denied at the provider" in response.content
    assert b"<script>" not in response.content
    assert as_log.to("/demo-oauth/token/") == []
    assert snapshot(connected) == before
    assert Event.objects.filter(kind="authorization_failed").exists()
    # consumed: the same state cannot be used again
    assert (
        outcome(
            staff_client, deliver(staff_client, connected, {"code": "x", "state": state})
        ).status_code
        == 400
    )


def test_code_rejected_by_the_provider_changes_nothing(staff_client, connected, as_log):
    query = consent(staff_client, start(staff_client, connected))
    query["code"] = ["tampered-code"]
    before = snapshot(connected)

    response = outcome(staff_client, deliver(staff_client, connected, query))

    assert response.status_code == 502
    assert b"invalid_grant" in response.content
    assert len(as_log.to("/demo-oauth/token/")) == 1  # never retried
    assert snapshot(connected) == before


def test_token_endpoint_down_changes_nothing(staff_client, connected, unused_port):
    Provider.objects.update(token_endpoint=f"http://127.0.0.1:{unused_port}/token")
    query = consent(staff_client, start(staff_client, connected))
    before = snapshot(connected)

    response = outcome(staff_client, deliver(staff_client, connected, query))

    assert response.status_code == 502
    assert b"could not be reached" in response.content or b"reach" in response.content
    assert snapshot(connected) == before


def test_token_endpoint_timing_out_changes_nothing(
    staff_client, connected, scripted_server, settings
):
    from tests.scripted_server import Reply

    settings.OAUTHCONN = {**settings.OAUTHCONN, "READ_TIMEOUT": 0.3, "REQUEST_DEADLINE": 1}
    scripted_server.add("/token", Reply(status=200, body={"access_token": "x"}, delay=2))
    Provider.objects.update(token_endpoint=scripted_server.url("/token"))
    query = consent(staff_client, start(staff_client, connected))
    before = snapshot(connected)

    response = outcome(staff_client, deliver(staff_client, connected, query))

    assert response.status_code == 504
    assert b"did not answer in time" in response.content
    assert len(scripted_server.requests) == 1
    assert snapshot(connected) == before


def test_signed_out_browser_gets_no_tokens(staff_client, connected, as_log):
    query = consent(staff_client, start(staff_client, connected))
    staff_client.logout()
    response = outcome(staff_client, deliver(staff_client, connected, query))
    assert response.status_code == 400
    assert as_log.to("/demo-oauth/token/") == []


# --- defect 3: a refused callback ends the attempt it names -----------------------------------


def repeated(name: str, extra: str):
    return lambda good: {**good, name: [*good.get(name, [extra]), extra]}


MALFORMED = {
    "code twice": repeated("code", "other-code"),
    "state twice": lambda good: {**good, "state": good["state"] * 2},
    "state and another": repeated("state", "other-state"),
    "iss twice": lambda good: {**good, "iss": ["https://as.example"] * 2},
    "empty code": lambda good: {**good, "code": [""]},
    "64 KB code": lambda good: {**good, "code": ["x" * 65536]},
    "control character in code": lambda good: {**good, "code": [good["code"][0] + "\x01"]},
    "control character in iss": lambda good: {**good, "iss": ["https://as.example\n"]},
}


@pytest.mark.parametrize("variant", [*MALFORMED, "POST", "another browser"])
def test_a_refused_callback_ends_the_attempt_it_names(
    staff_client, staff, make_connection, as_log, variant
):
    connection = make_connection()
    good = consent(staff_client, start(staff_client, connection))
    url = f"/oauthconn/callback/{connection.slug}/"
    if variant == "POST":
        response = staff_client.post(url, good)
    elif variant == "another browser":
        response = Client()
        response.force_login(staff)
        response = response.get(url, good)
    else:
        response = staff_client.get(url, MALFORMED[variant](good))
    assert response.status_code == 303

    later = outcome(staff_client, deliver(staff_client, connection, good))

    assert later.status_code == 400
    assert b"already used" in later.content
    assert as_log.to("/demo-oauth/token/") == []
    assert not Token.objects.filter(connection=connection).exists()
    assert PendingAuthorization.objects.get().consumed_at is not None


# --- defect 4: losing the permission stops a flow already started -----------------------------


@pytest.fixture
def operator(django_user_model):
    """Staff allowed to authorize connections, by the permission alone (not a superuser)."""
    user = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="authorize_connection"))
    return user


def lose_permission(user):
    user.user_permissions.remove(Permission.objects.get(codename="authorize_connection"))


def lose_staff(user):
    type(user).objects.filter(pk=user.pk).update(is_staff=False)


def lose_account(user):
    type(user).objects.filter(pk=user.pk).update(is_active=False)


def lose_everything(user):
    user.delete()


@pytest.mark.parametrize(
    "lose, backend",
    [
        (lose_permission, None),
        (lose_staff, None),
        (lose_account, None),
        # a backend that keeps inactive users signed in: the flow's own check must refuse
        (lose_account, "django.contrib.auth.backends.AllowAllUsersModelBackend"),
        (lose_everything, None),
    ],
)
def test_losing_the_right_to_authorize_stops_a_started_flow(
    client, operator, make_connection, as_log, settings, lose, backend
):
    if backend:
        settings.AUTHENTICATION_BACKENDS = [backend]
    connection = make_connection()
    client.force_login(operator, backend=backend)
    query = consent(client, start(client, connection))

    lose(operator)
    page = outcome(client, deliver(client, connection, query))

    assert page.status_code in (400, 403)
    assert as_log.to("/demo-oauth/token/") == []
    assert not Token.objects.filter(connection=connection).exists()


def test_a_deactivated_user_cannot_finish_a_personal_connection(
    client, django_user_model, make_connection, as_log, settings
):
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.AllowAllUsersModelBackend"]
    connection = make_connection("drive", per_user=True)
    alice = django_user_model.objects.create_user("alice", password="pw")
    client.force_login(alice)
    query = consent(client, start(client, connection))

    lose_account(alice)
    page = outcome(client, deliver(client, connection, query))

    assert page.status_code == 403
    assert b"not allowed to authorize" in page.content
    assert as_log.to("/demo-oauth/token/") == []
    assert not Token.objects.filter(connection=connection).exists()


def test_the_callback_of_an_allowed_operator_still_connects(client, operator, make_connection):
    connection = make_connection()
    client.force_login(operator)
    assert authorize(client, connection).status_code == 303
    assert Token.objects.get(connection=connection).authorized_by == operator


# --- defect 9a: an error answer without the promised iss says what the provider said ------------


def test_a_denial_without_the_promised_iss_says_what_the_provider_answered(
    staff_client, make_connection, as_log
):
    from oauth2_provider.models import Application

    connection = make_connection()
    Provider.objects.update(issuer="http://testserver/demo-oauth", sends_issuer=True)
    Application.objects.update(skip_authorization=False)
    authorize_url = start(staff_client, connection)
    parts = urlsplit(authorize_url)
    form = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert staff_client.get(parts.path, form).status_code == 200  # the consent page
    denied = staff_client.post(parts.path, form)  # without "allow": the user said no
    answer = parse_qs(urlsplit(denied["Location"]).query)
    assert answer["error"] == ["access_denied"] and "iss" not in answer  # DOT's quirk

    page = outcome(staff_client, deliver(staff_client, connection, answer))

    assert page.status_code == 400
    assert (
        b"The provider answered access_denied, but without the iss parameter it promised, "
        b"so the answer was refused." in page.content
    )
    assert as_log.to("/demo-oauth/token/") == []

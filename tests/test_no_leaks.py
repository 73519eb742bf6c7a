"""Canary scan (SECURITY §3.2, R43): after a full life cycle with every logger at DEBUG, no
secret, token, code or verifier appears in any log record, page or error message."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken, RefreshToken

from oauthconn import get_connection
from oauthconn.models import Token
from tests.conftest import consent, deliver, outcome, start

pytestmark = pytest.mark.django_db(transaction=True)


def test_nothing_secret_reaches_logs_or_pages(staff_client, make_connection, as_log, caplog):
    caplog.set_level(logging.DEBUG)  # the root logger: every library's records
    connection = make_connection()
    query = consent(staff_client, start(staff_client, connection))
    page = deliver(staff_client, connection, query)
    secrets = {
        connection.client_secret.reveal(),
        query["code"][0],
        query["state"][0],
        as_log.to("/demo-oauth/token/")[0].form["code_verifier"][0],
    }
    Token.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    get_connection("crm").get("me/")
    replay = outcome(staff_client, deliver(staff_client, connection, query))  # an error path
    secrets |= set(AccessToken.objects.values_list("token", flat=True))
    secrets |= set(RefreshToken.objects.values_list("token", flat=True))

    pages = [
        staff_client.get(page["Location"]),
        replay,
        staff_client.get("/admin/oauthconn/token/"),
        staff_client.get(f"/admin/oauthconn/token/{Token.objects.get().pk}/change/"),
        staff_client.get("/admin/oauthconn/event/"),
        staff_client.get("/admin/oauthconn/connection/"),
    ]
    staff_client.post(f"/oauthconn/disconnect/{connection.slug}/")

    assert len(secrets) >= 6
    # The authorization server under test (oauthlib, django-oauth-toolkit) is the third party:
    # its own logs are not ours to judge.
    ours = [r for r in caplog.records if not r.name.startswith(("oauthlib", "oauth2_provider"))]
    logged = "\n".join(r.getMessage() for r in ours)
    for secret in secrets:
        assert secret not in logged
        for response in pages:
            assert secret.encode() not in response.content


def test_error_messages_never_carry_what_was_sent(staff_client, make_connection):
    connection = make_connection()
    query = consent(staff_client, start(staff_client, connection))
    query["code"] = ["canary-code-4711"]
    response = outcome(staff_client, deliver(staff_client, connection, query))
    assert response.status_code == 502
    assert b"canary-code-4711" not in response.content
    event = connection.events.get(kind="authorization_failed")
    assert "canary-code-4711" not in event.message

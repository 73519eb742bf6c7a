"""manage.py oauthconn_health: what needs attention, and an exit code for monitoring."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from oauthconn.models import Connection, Provider, Token, TokenStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def grant():
    provider = Provider.objects.create(slug="p", name="P", token_endpoint="https://as.example/t")

    def make(slug: str, **fields) -> Token:
        connection = Connection.objects.create(slug=slug, name=slug, provider=provider)
        defaults = {
            "access_token": "AT-canary",
            "refresh_token": "RT-canary",
            "status": TokenStatus.ACTIVE,
        }
        return Token.objects.create(connection=connection, **{**defaults, **fields})

    return make


def run(*args) -> str:
    out = io.StringIO()
    call_command("oauthconn_health", *args, stdout=out)
    return out.getvalue()


def test_healthy_grants_pass(grant):
    grant("crm")
    assert run().strip() == "1 grant(s): 0 need attention, 0 failing or needing reauthorization."


def test_expiring_grants_are_listed_without_failing(grant):
    grant("crm", refresh_expires_at=timezone.now() + timedelta(days=1))
    assert "crm: Expiring" in run()


def test_broken_grants_fail_with_their_reason(grant):
    grant("crm", status=TokenStatus.NEEDS_REAUTH, last_error="The provider rejected the grant.")
    grant("erp", status=TokenStatus.FAILING, last_error="The provider did not answer in time.")
    out = io.StringIO()
    with pytest.raises(CommandError, match="2 grant"):
        call_command("oauthconn_health", "--json", stdout=out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()[:2]]
    assert [(r["connection"], r["status"]) for r in rows] == [
        ("crm", "needs_reauth"),
        ("erp", "failing"),
    ]
    assert rows[0]["last_error"] == "The provider rejected the grant."
    assert "canary" not in out.getvalue()  # no token value in the output

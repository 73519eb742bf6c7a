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


def failing_run(*args) -> str:
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("oauthconn_health", *args, stdout=out)
    return out.getvalue()


def test_rows_name_the_owner_and_the_expiry(grant, django_user_model):
    ada = django_user_model.objects.create_user("ada")
    ends = timezone.now() + timedelta(days=1)
    grant("crm", owner=ada, status=TokenStatus.FAILING, last_error="No answer.")
    grant("erp", owner_key="team:7", refresh_token=None, expires_at=ends)
    grant("hr", status=TokenStatus.NEEDS_REAUTH)
    grant("ok")
    assert failing_run().splitlines() == [
        "crm (ada): Failing: No answer.",
        "erp (team:7): Expiring",
        "hr: Needs reauthorization",
        "4 grant(s): 3 need attention, 2 failing or needing reauthorization.",
    ]
    rows = [json.loads(line) for line in failing_run("--json").splitlines()[:3]]
    assert rows == [
        {"connection": "crm", "owner": "ada", "status": "failing", "last_error": "No answer.",
         "expires_at": None},
        {"connection": "erp", "owner": "team:7", "status": "expiring", "last_error": "",
         "expires_at": ends.isoformat()},
        {"connection": "hr", "owner": None, "status": "needs_reauth", "last_error": "",
         "expires_at": None},
    ]  # fmt: skip


def test_rows_read_no_token(grant):
    """A line shows names, a status, an error and a date: the grants' encrypted columns
    were read into a model instance of each grant and its connection, which was most of the
    command's time with 2,000 grants needing attention (a million grants)."""
    from django.db import connection as db
    from django.test.utils import CaptureQueriesContext

    grant("crm", status=TokenStatus.FAILING)
    with CaptureQueriesContext(db) as captured:
        failing_run()
    (read,) = [q["sql"] for q in captured if "ORDER BY" in q["sql"]]
    columns = read.split(" FROM ")[0]
    assert "access_token" not in columns and "refresh_token" not in columns, columns

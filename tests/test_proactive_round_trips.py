"""How many statements a proactive refresh costs the database (issue 11).

Counted with ``connection.execute_wrapper`` over a batch: every statement Django sends,
savepoints included. The transaction's BEGIN and COMMIT are sent by the driver itself and
are not counted here (two more per token).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from oauthconn.flows.proactive import Policy, refresh_due
from oauthconn.models import Connection, Provider, Token
from tests.scripted_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)

BATCH = 6


def make_due(scripted_server, slug: str) -> None:
    endpoint = scripted_server.url(f"/{slug}/token")
    provider = Provider.objects.create(slug=slug, name=slug, token_endpoint=endpoint)
    connection_ = Connection.objects.create(
        slug=slug, name=slug, provider=provider, client_id="c", client_secret="s"
    )
    Token.objects.create(
        connection=connection_,
        access_token="a",
        refresh_token="r",
        expires_at=timezone.now() + timedelta(minutes=2),
    )
    body = {"access_token": "a2", "refresh_token": f"{slug}-r2", "expires_in": 3600}
    scripted_server.add(f"/{slug}/token", Reply(body={**body, "token_type": "Bearer"}))


@pytest.mark.postgres
def test_a_refresh_costs_at_most_three_statements(scripted_server):
    for i in range(BATCH):
        make_due(scripted_server, f"c{i}")
    statements: list[str] = []

    def count(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        summary = refresh_due(Policy.from_settings(), concurrency=1)

    assert summary.refreshed == BATCH
    per_refresh = (len(statements) - 1) / BATCH  # the one candidates query serves the batch
    assert per_refresh <= 3, "\n".join(statements)
    # The rotated refresh tokens are stored.
    stored = sorted(t.refresh_token.reveal() for t in Token.objects.all())
    assert stored == sorted(f"c{i}-r2" for i in range(BATCH))

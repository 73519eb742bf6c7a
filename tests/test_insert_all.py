"""``flows.rows.insert_all``: the proactive refresh's one INSERT of a chunk's events
(PostgreSQL, one array per column).

What must hold: every column arrives as written, whatever the text holds; the keys come back
to the right instances; a value too long for its column is refused, never cut.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DataError, transaction
from django.utils import timezone

from oauthconn.flows.rows import insert_all
from oauthconn.models import Connection, Event, Provider, Token

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

#: text an array literal would have to quote or escape
AWKWARD = ['a "quoted", {braced} \\ text', "NULL", "", "naïve ☃\nsecond line"]

COLUMNS = ["connection_id", "token_id", "owner_id", "owner_key", "kind", "actor_id"]


@pytest.fixture
def grant(django_user_model):
    provider = Provider.objects.create(slug="p", name="P", token_endpoint="https://p.test/t")
    connection = Connection.objects.create(slug="c", name="C", provider=provider, client_id="x")
    user = django_user_model.objects.create(username="u")
    return connection, Token.objects.create(connection=connection, owner=user, access_token="a")


def test_every_column_arrives_as_written_and_each_instance_gets_its_key(grant, admin_user):
    connection, token = grant
    moment = timezone.now() - timedelta(days=3, microseconds=7)
    events = [
        Event(connection=connection, token=token, owner=token.owner, kind="refreshed"),
        Event(connection=connection, owner_key="team:7", kind="authorized", actor=admin_user),
        *(
            Event(connection=connection, kind="refresh_failed", message=text, data={text: [text]})
            for text in AWKWARD
        ),
        Event(connection=connection, kind="revoked", data={"n": 1.5, "none": None, "l": []}),
    ]
    events[-1].created_at = moment

    insert_all("default", events)

    assert all(not event._state.adding and event._state.db == "default" for event in events)
    stored = Event.objects.in_bulk([event.pk for event in events])
    assert len(stored) == len(events)
    for event in events:
        row = stored[event.pk]
        for column in [*COLUMNS, "message", "data", "created_at"]:
            assert getattr(row, column) == getattr(event, column), (column, event.message)
    assert stored[events[-1].pk].created_at == moment


def test_a_value_too_long_for_its_column_is_refused_not_cut(grant):
    connection, _ = grant
    long_key = "k" * (Event._meta.get_field("owner_key").max_length + 1)
    events = [
        Event(connection=connection, kind="refreshed"),
        Event(connection=connection, kind="refreshed", owner_key=long_key),
    ]
    with pytest.raises(DataError), transaction.atomic():
        insert_all("default", events)
    assert not Event.objects.exists()  # one statement: none of the rows is written

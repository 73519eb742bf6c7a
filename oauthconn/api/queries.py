"""What the API's connection lists read: the grants each caller may see, and the filters.

The status filter looks at the caller's own grant only, so it reveals nothing about other
users'; each list's query count stays the same whatever the size of the page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Exists, Model, OuterRef, Prefetch, Q, QuerySet

from oauthconn import paging
from oauthconn.api import actions
from oauthconn.api import serializers as s
from oauthconn.models import Connection, Event, Token
from oauthconn.models.connections import UNSHARED
from oauthconn.models.owners import owner_key
from oauthconn.status import keeps_grant_counts

if TYPE_CHECKING:
    from rest_framework.views import APIView

    from oauthconn.types import RequestUser


def with_visible_tokens(
    queryset: QuerySet[Connection], user: RequestUser, team: Model | None = None
) -> QuerySet[Connection]:
    """Prefetch only the grants the caller may see: shared ones, their own, and those of
    ``team`` (an owner the resolver gave them, chosen with ``?owner=``)."""
    # A sliced Prefetch (one window query) keeps the page's query count independent of its size.
    recent = Event.objects.select_related("actor").order_by("-created_at", "-id")
    mine = Q(owner__isnull=True, owner_key="") | Q(owner=user.pk)
    if team is not None:
        mine |= Q(owner__isnull=True, owner_key=owner_key(team))
    visible = Token.objects.filter(mine).prefetch_related(
        Prefetch("events", queryset=recent[: s.RECENT_EVENTS], to_attr="recent_events")
    )
    return queryset.select_related("provider").prefetch_related(
        Prefetch("tokens", queryset=visible, to_attr="visible_tokens")
    )


def filter_connections(queryset: QuerySet[Connection], view: APIView) -> QuerySet[Connection]:
    params = actions.ConnectionFilterSerializer(data=view.request.query_params)
    params.is_valid(raise_exception=True)
    wanted = params.validated_data
    if wanted.get("provider"):
        queryset = queryset.filter(provider__slug=wanted["provider"])
    if wanted.get("per_user") is not None:
        queryset = queryset.filter(per_user=wanted["per_user"])
    if wanted.get("status"):
        queryset = filter_status(queryset, wanted["status"], view.request.user)
    return queryset


def filter_status(
    queryset: QuerySet[Connection], wanted: str, user: RequestUser
) -> QuerySet[Connection]:
    """Filter on the caller's grant only, so the filter reveals nothing about other users.

    One ``EXISTS`` (a semi-join) whose only link to the listed connection is
    ``connection_id``: which grant is the caller's (the shared one, or their own on a
    per-user connection) is decided inside it, by joining the grant's own connection. With
    that single equality PostgreSQL may run it either way: from the ``(status, expires_at)``
    index when the status is rare (a thousand failing grants among a million: read them,
    then their connections), or along the ordering index when it is common. Comparing the
    outer row's ``per_user`` inside the ``EXISTS`` (as before) left it only the second way,
    which reads every connection when the status is rare.
    """
    # (no team's grant: this list is the staff's view, and the filter must not reveal one)
    callers = Q(
        connection__per_user=False, connection__per_owner=False, owner__isnull=True, owner_key=""
    ) | Q(connection__per_user=True, owner=user.pk)
    if wanted == "not_connected":
        return not_connected(queryset, user)
    grants = Token.objects.filter(callers, connection=OuterRef("pk"), status=wanted)
    return queryset.filter(Exists(grants))


#: Up to this many matches, the "not connected" page is asked by their ids (each a parameter).
INLINE_IDS_UP_TO = 1000


def not_connected(queryset: QuerySet[Connection], user: RequestUser) -> QuerySet[Connection]:
    """The connections where the caller has no grant row: a shared one without its shared
    grant, a per-user one without the caller's own, and every per-owner one (this list shows
    no team's grant).

    Each part has its index (migration 0021): the first a partial index of the connections
    without a shared grant (``shared_grants``, kept by triggers), the second an anti-join of
    the per-user connections' ids with the caller's grants, both index-only. Proving that
    nothing matches then costs about the caller's grants, not a walk of every connection.

    The matching ids are read first, up to one more than the paginator counts exactly, and
    how many there are chooses how the page is asked (each way lists the same rows; the
    paginator is told the count when it is exact):
    - up to :data:`INLINE_IDS_UP_TO`, by those ids: the database then knows how few match;
    - up to the paginator's exact count, by the same union as a subquery: its matches are
      sorted by name, which costs less than walking the name index to find them;
    - more, as one condition: matches are common, so the name index is walked until a page
      is full (sorting them all would cost more).
    """
    alias = queryset.db
    if keeps_grant_counts(alias):
        shared = UNSHARED
    else:  # no triggers: the anti-join
        shared_grant = Token.objects.filter(
            connection=OuterRef("pk"), owner__isnull=True, owner_key=""
        )
        shared = Q(per_user=False) & (Q(per_owner=True) | Q(~Exists(shared_grant)))
    mine = Token.objects.filter(connection=OuterRef("pk"), owner=user.pk)
    per_user = Q(per_user=True) & Q(~Exists(mine))
    ids = Connection.objects.using(alias).order_by().values_list("pk", flat=True)
    union = ids.filter(shared).union(ids.filter(per_user), all=True)
    matches = list(union[: paging.EXACT_UP_TO + 1])
    if len(matches) > paging.EXACT_UP_TO:
        return queryset.filter(shared | per_user)
    by_id = matches if len(matches) <= INLINE_IDS_UP_TO else union
    return paging.with_known_count(queryset.filter(pk__in=by_id), len(matches))

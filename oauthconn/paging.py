"""A paginator whose cost does not grow with the table, for the admin's and the API's lists.

Django's ``Paginator`` counts every matching row (``COUNT(*)``) for each page: at a million
tokens or events that count alone takes longer than the page. :class:`BoundedCountPaginator`
counts at most ``EXACT_UP_TO + 1`` rows (``SELECT COUNT(*) FROM (… LIMIT n)``), so:

- up to ``EXACT_UP_TO`` matching rows the count is exact, as before;
- past it, on PostgreSQL, the count is the planner's estimate (``EXPLAIN``; for an
  unfiltered list that is ``pg_class.reltuples``), never less than the rows actually seen;
  elsewhere it is ``EXACT_UP_TO + 1`` (SQLite is for the demo and small sites).

Past the bound the count is approximate, so pages are not cut at it: a page past the
estimated last one is still served (empty at the true end), and "is there a next page" is
answered by fetching one row more than the page shows, which is always exact. API clients
that follow ``next`` therefore see every row whatever the count says.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import cached_property
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.core.paginator import EmptyPage, Page, Paginator
from django.db import connections
from django.db.models import QuerySet

#: Up to this many matching rows, counts are exact.
EXACT_UP_TO = 10_000


KNOWN_COUNT = "_oauthconn_known_count"


def with_known_count(queryset: QuerySet, count: int) -> QuerySet:
    """``queryset``, marked as matching exactly ``count`` rows (at most :data:`EXACT_UP_TO`),
    for a filter that had to find its matches anyway: the paginator then does not count
    them again. The mark is on this object only; any clone of it is counted as usual."""
    if count > EXACT_UP_TO:
        raise ValueError(f"{count} rows are past the exact count ({EXACT_UP_TO})")
    setattr(queryset, KNOWN_COUNT, count)
    return queryset


class BoundedPage(Page):
    """A page that knows from its own rows whether another page follows."""

    def __init__(
        self, object_list: Sequence[Any], number: int, paginator: BoundedCountPaginator, more: bool
    ) -> None:
        super().__init__(object_list, number, paginator)
        self.more = more

    def has_next(self) -> bool:
        return self.more


class BoundedCountPaginator(Paginator):
    """Exact counts up to :data:`EXACT_UP_TO`, an estimate past it (see the module docstring)."""

    @cached_property
    def count(self) -> int:
        known = getattr(self.object_list, KNOWN_COUNT, None)
        if known is not None:
            return known
        seen, estimate = self._bounded_count(), self._estimate()
        if seen <= EXACT_UP_TO:
            return seen
        return max(seen, estimate or 0)

    @property
    def exact(self) -> bool:
        return self.count <= EXACT_UP_TO

    def validate_number(self, number: int | float | str) -> int:
        if self.exact:
            return super().validate_number(number)
        number = super().validate_number(1) if number in (None, "") else number
        try:
            number = int(number)
        except (TypeError, ValueError):
            return super().validate_number(number)  # raises PageNotAnInteger
        if number < 1:
            raise EmptyPage(self.error_messages["min_page"])
        return number

    def page(self, number: int | float | str) -> BoundedPage:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        if self.exact and bottom >= self.count:
            # Nothing to show, as the exact count says: skip the page query, which for a
            # filter matching nothing would walk the whole ordering index looking for a row.
            return BoundedPage([], number, self, more=False)
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        return BoundedPage(rows[: self.per_page], number, self, len(rows) > self.per_page)

    @property
    def num_pages(self) -> int:
        return max(1, math.ceil(self.count / self.per_page))

    def _bounded_count(self) -> int:
        object_list = self.object_list
        if isinstance(object_list, QuerySet):
            # Only the keys: a list's annotations (a count per row) are for its page alone.
            return object_list.order_by().values("pk")[: EXACT_UP_TO + 1].count()
        return len(object_list)

    def _estimate(self) -> int | None:
        """PostgreSQL's row estimate for the list's query (one ``EXPLAIN``); None elsewhere."""
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return None
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return None
        try:
            sql, params = queryset.order_by().values("pk").query.sql_with_params()
        except EmptyResultSet:  # a filter Django knows matches nothing (``pk__in=[]``)
            return 0
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return int(plan[0]["Plan"]["Plan Rows"])

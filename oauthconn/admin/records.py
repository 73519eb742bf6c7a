from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.db.models import Model, QuerySet
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from oauthconn.fields import encrypted_fields
from oauthconn.models import Connection, Event, Token
from oauthconn.paging import BoundedCountPaginator

#: The connection filter lists every connection only up to this many (one cheap query).
CONNECTION_CHOICES_UP_TO = 100


class BoundedChangeList(ChangeList):
    """A change list whose page query always has a ``LIMIT``.

    When every match fits on one page (or "Show all" is clicked), Django lists the filtered
    queryset without a ``LIMIT``. Its count is exact then (at most ``list_max_show_all``),
    but without a ``LIMIT`` PostgreSQL must find and sort every match before the first row:
    a filter that matches nothing among a million connections read them all twice (the
    count, then the list). Sliced to the count, no match means no query, and a few matches
    let the planner walk the ordering index and stop.
    """

    model_admin: BoundedListAdmin

    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        return self.model_admin.list_queryset(queryset)

    def get_results(self, request):
        super().get_results(request)
        if self.result_count <= self.list_max_show_all and (
            self.show_all or self.result_count <= self.list_per_page
        ):
            self.result_list = self.queryset._clone()[: self.result_count]


class BoundedListAdmin(admin.ModelAdmin):
    """The change list of a table that grows: a bounded count (oauthconn.paging), no second
    full-table count, a page query that is always limited."""

    paginator = BoundedCountPaginator
    show_full_result_count = False

    def get_changelist(self, request, **kwargs):
        return BoundedChangeList

    def list_queryset(self, queryset: QuerySet) -> QuerySet:
        """What the change list (and its actions) read besides the columns: prefetches and
        annotations the change page has no use for."""
        return queryset

    def action_checkbox(self, obj: Model) -> SafeString:
        """Django's row checkbox, byte for byte, without a form widget per row.

        Django renders it as a ``CheckboxInput`` through the form renderer's templates: a
        fifth of a 100-row page's time. The HTML is fixed (admin's actions.js reads the
        name and the class), so it is written here once.
        """
        label = format_html(gettext("Select this object for an action - {}"), str(obj))
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            ACTION_CHECKBOX_NAME,
            str(obj.pk),
            label,
        )


class ConnectionFilter(admin.SimpleListFilter):
    """Filter by connection without rendering a million of them.

    Up to ``CONNECTION_CHOICES_UP_TO`` connections it lists them all, as Django's own
    related-field filter would; past that it lists only the chosen one (reached from the
    connection's page, a link, or the search box, which matches a connection slug exactly).
    """

    title = "connection"
    parameter_name = "connection"

    def lookups(self, request, model_admin):
        rows = Connection.objects.order_by("name").values_list("pk", "name")
        first = list(rows[: CONNECTION_CHOICES_UP_TO + 1])
        chosen = self.value()
        # The chosen one is read even when the list has it, so the page costs the same
        # queries whether there are ten connections or a million.
        chosen_rows = list(rows.filter(pk=chosen)) if chosen and chosen.isdigit() else []
        if len(first) <= CONNECTION_CHOICES_UP_TO:
            return [(str(pk), name) for pk, name in first]
        return [(str(pk), name) for pk, name in chosen_rows]  # none chosen: not shown

    def queryset(self, request, queryset):
        chosen = self.value()
        if not chosen:
            return queryset
        return queryset.filter(connection=chosen) if chosen.isdigit() else queryset.none()


class ProviderFilter(admin.RelatedFieldListFilter):
    """The connection's provider (Django's own filter, choices and parameters), asked as
    "the connection is one of that provider's".

    As a semi-join PostgreSQL may remember each connection it has looked up (``Memoize``)
    while it walks the newest rows; as the join Django writes, it looked the connection up
    again for every row. A popular connection whose 100,000 grants are the newest made the
    token list for another provider walk past all of them: 111 ms of query, now 43 ms.
    """

    def queryset(self, request, queryset):
        chosen = self.used_parameters.get(self.lookup_kwarg)  # a list of ids, as typed
        if not isinstance(chosen, list) or not chosen or len(self.used_parameters) > 1:
            return super().queryset(request, queryset)
        try:
            connections = Connection.objects.filter(provider__in=chosen).values("pk")
            return queryset.filter(connection__in=connections)
        except (ValueError, ValidationError) as err:  # as Django's filter reports them
            raise IncorrectLookupParameters(err) from err


class ReadOnlyAdmin(BoundedListAdmin):
    """Change lists over the tables that grow: bounded counts, no full-table COUNT(*)."""

    list_filter = ["status", ConnectionFilter, ("connection__provider", ProviderFilter)]
    # An exact, case-sensitive match, which the unique index on the slug answers. ("=slug"
    # is Django's iexact: UPPER(slug) = UPPER(%s), which no index answers, so every search
    # read every connection.)
    search_fields = ["connection__slug__exact"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Token)
class TokenAdmin(ReadOnlyAdmin):
    """Token metadata only: the encrypted fields are not editable and never listed."""

    list_display = [
        "connection",
        "owner",
        "owner_key",
        "status",
        "expires_at",
        "authorized_at",
        "refreshed_at",
    ]
    list_select_related = ["connection", "owner"]
    fields = [
        "connection",
        "owner",
        "owner_key",
        "status",
        "token_type",
        "scope",
        "subject",
        "expires_at",
        "refresh_expires_at",
        "authorized_by",
        "authorized_at",
        "refreshed_at",
        "last_error",
        "failure_count",
        "next_attempt_at",
        "revocation_pending",
    ]

    def list_queryset(self, queryset: QuerySet) -> QuerySet:
        # The list shows metadata only: the ciphertexts and the claims (an ID token's worth
        # per row) stay in the database. A row that is opened, or acted on, reads its own.
        return queryset.defer(*encrypted_fields(Token), "claims")


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "connection", "owner", "owner_key", "actor", "message"]
    list_filter = ["kind", ConnectionFilter, ("connection__provider", ProviderFilter)]
    list_select_related = ["connection", "owner", "actor"]

"""ConnectionAdmin (the wizard for "Add", the status page for "Change") and ProviderAdmin."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import update_wrapper
from typing import Any
from urllib.parse import urlsplit

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db import transaction
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.debug import sensitive_post_parameters

from oauthconn import flows
from oauthconn.admin import health, pages
from oauthconn.admin.features import connection_features
from oauthconn.admin.forms import ConnectionForm, ProviderForm, offers_per_owner
from oauthconn.admin.records import BoundedListAdmin
from oauthconn.admin.wizard import ConnectionWizard
from oauthconn.base_url import has_grant_fields
from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import DiscoveryFailed
from oauthconn.flows.configuration import invalidate_grants
from oauthconn.flows.discovery import refresh_discovery
from oauthconn.flows.keys import ROLLOVER_DAYS, current_key_type, jwks_url, rotate_key
from oauthconn.flows.scopes import requestable
from oauthconn.models import ClientAuthMethod, Connection, Event, Provider, Token
from oauthconn.models.owners import load_owners
from oauthconn.status import (
    STATUS_CHOICES,
    STATUS_LABELS,
    connected_grants,
    connected_label,
    filter_connections,
    token_status,
)

#: The connection page lists this many grants of a per-user or per-owner connection.
GRANTS_LISTED = 50


@admin.register(Provider)
class ProviderAdmin(BoundedListAdmin):  # providers are few; the same paging as every list
    form = ProviderForm
    list_display = ["name", "slug", "issuer", "preset", "discovered_at"]
    search_fields = ["name", "slug", "issuer"]
    prepopulated_fields = {"slug": ["name"]}
    actions = ["refresh_metadata"]

    @admin.action(description="Refresh discovered metadata", permissions=["change"])
    def refresh_metadata(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset:
            try:
                refresh_discovery(provider)
            except DiscoveryFailed as err:
                self.message_user(request, f"{provider.name}: {err}", messages.ERROR)
            else:
                self.message_user(request, f"{provider.name}: metadata refreshed.")


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return STATUS_CHOICES

    def queryset(self, request, queryset):
        value = self.value()
        return filter_connections(queryset, value) if value else queryset


def shared_token(connection: Connection) -> Token | None:
    # The row list_queryset prefetched: one query for the whole change list.
    shared: list[Token] = connection.shared_grant_rows  # type: ignore[attr-defined]
    return shared[0] if shared else None


@admin.register(Connection)
class ConnectionAdmin(BoundedListAdmin):
    form = ConnectionForm
    list_display = [
        "name",
        "provider",
        "grant_type",
        "sharing",
        "status_badge",
        "token_expiry",
        "last_refresh",
    ]
    list_filter = [StatusFilter, "provider"]
    search_fields = ["name"]
    list_select_related = ["provider"]
    # No full-table COUNT(*) per page at a million connections: BoundedListAdmin.
    change_form_template = "admin/oauthconn/connection/change_form.html"

    class Media:
        css = {"all": ["oauthconn/admin.css"]}

    def list_queryset(self, queryset: QuerySet[Connection]) -> QuerySet[Connection]:
        # One query for the page's shared grants; a per-user connection's grants (one per
        # user) are counted in the database, never loaded.
        shared = Token.objects.for_owner(None)
        rows = Prefetch("tokens", queryset=shared, to_attr="shared_grant_rows")
        return queryset.prefetch_related(rows).annotate(connected_grants=connected_grants())

    # --- change list columns --------------------------------------------------------------

    @admin.display(description="shared or per-user")
    def sharing(self, obj: Connection) -> str:
        return "Per user" if obj.per_user else "Per owner" if obj.per_owner else "Shared"

    @admin.display(description="status")
    def status_badge(self, obj: Connection) -> SafeString:
        if not obj.is_shared:
            count = connected_label(obj.connected_grants)  # type: ignore[attr-defined]
            return format_html('<span class="oauthconn-badge">{} connected</span>', count)
        status = token_status(shared_token(obj))
        return badge(status)

    @admin.display(description="token expiry")
    def token_expiry(self, obj: Connection) -> datetime | str | None:
        token = shared_token(obj) if obj.is_shared else None
        return token.expires_at if token and token.access_token is not None else "—"

    @admin.display(description="last refresh")
    def last_refresh(self, obj: Connection) -> datetime | str:
        token = shared_token(obj) if obj.is_shared else None
        return (token.refreshed_at if token else None) or "—"

    # --- the wizard and the buttons ---------------------------------------------------------

    def add_view(self, request, form_url="", extra_context=None):
        return ConnectionWizard.as_view(model_admin=self)(request)

    def get_urls(self):
        def wrap(view):
            def wrapper(request, object_id):
                return view(self, request, object_id)

            return update_wrapper(self.admin_site.admin_view(xframe_options_deny(wrapper)), view)

        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        custom = [
            path(f"<path:object_id>/{name}/", wrap(view), name=f"{prefix}_{name}")
            for name, view in (
                ("refresh", pages.refresh_view),
                ("test", pages.test_view),
                ("disconnect", pages.disconnect_view),
                ("rotate_key", pages.rotate_key_view),
            )
        ]
        health_page = self.admin_site.admin_view(lambda request: health.health_view(self, request))
        custom.append(path("health/", health_page, name=f"{prefix}_health"))
        return custom + super().get_urls()

    # --- the connection page ------------------------------------------------------------------

    def get_exclude(self, request, obj=None):
        # The page lays out the form class's fields, not the form's: ConnectionForm's own
        # check alone left "per_owner" in the layout and the page failed (KeyError).
        excluded = list(super().get_exclude(request, obj) or [])
        return excluded if offers_per_owner(obj) else [*excluded, "per_owner"]

    @method_decorator(sensitive_post_parameters("new_client_secret"))
    @method_decorator(xframe_options_deny)
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = extra_context or {}
        connection = self.get_object(request, object_id) if object_id else None
        if connection is not None:
            extra_context.update(status_context(request, connection))
        return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        # Revoke before Django opens the delete's transaction: on SQLite that transaction
        # holds the database's only write lock, which a provider sharing the database (the
        # demo's) needs to record the revocation.
        if request.method == "POST":
            connection = self.get_object(request, unquote(object_id))
            if connection is not None and self.has_delete_permission(request, connection):
                revoke_before_delete(request, [connection])
        return super().delete_view(request, object_id, extra_context)

    def delete_queryset(self, request, queryset):
        revoke_before_delete(request, queryset)
        super().delete_queryset(request, queryset)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if obj.client_auth_method == ClientAuthMethod.PRIVATE_KEY_JWT and obj.private_key is None:
            kid = rotate_key(obj)
            messages.info(
                request,
                f"{obj.name}: a key pair was generated (key id {kid}). Register the JWKS URL "
                f"{jwks_url(obj)} at the provider.",
            )
        fields = getattr(form, "r5_fields", [])
        if change and fields and invalidate_grants(obj, fields, actor=request.user):
            messages.warning(
                request,
                f"{obj.name}: you changed {', '.join(fields)}, so the stored tokens were "
                "dropped (not revoked). Authorize the connection again.",
            )
        if change and flows.KIND_FIELDS & set(form.changed_data):
            # After the save commits: revoking sends a request per grant.
            transaction.on_commit(lambda: end_stranded_grants(request, obj))


def end_stranded_grants(request: HttpRequest, connection: Connection) -> None:
    results = flows.end_stranded_grants(connection, actor=request.user)
    if results:
        grants = "1 grant" if len(results) == 1 else f"{len(results)} grants"
        messages.info(
            request,
            f"{connection.name} changed whose grants it has: {grants} of its old kind "
            "revoked at the provider and removed.",
        )
    warn_unrevoked(request, [(connection, result) for result in results])


def revoke_before_delete(request: HttpRequest, connections: Iterable[Connection]) -> None:
    """SECURITY R45: deleting a connection revokes its grants at the provider first."""
    warn_unrevoked(request, flows.revoke_grants(connections, actor=request.user))


def warn_unrevoked(
    request: HttpRequest, results: Iterable[tuple[Connection, flows.DisconnectResult]]
) -> None:
    for connection, result in results:
        if result.revoked_at_provider is False:
            messages.warning(request, f"{connection.name}: {result.message}")


def badge(status: str) -> SafeString:
    return format_html(
        '<span class="oauthconn-badge oauthconn-{}">{}</span>', status, STATUS_LABELS[status]
    )


def signing_key_context(request: HttpRequest, connection: Connection) -> dict[str, Any]:
    """The private_key_jwt part of the page: public facts only (the private key stays sealed)."""
    if connection.client_auth_method != ClientAuthMethod.PRIVATE_KEY_JWT:
        return {}
    return {
        "signs_jwt": True,
        "jwks_url": jwks_url(connection),
        "key_id": connection.private_key_id,
        "key_type": current_key_type(connection),
        "rollover_days": ROLLOVER_DAYS,
        "can_rotate_key": request.user.has_perm("oauthconn.change_connection"),
    }


def status_context(request: HttpRequest, connection: Connection) -> dict[str, Any]:
    """What the connection page shows above the form: status, grant metadata, events."""
    user = request.user
    token = Token.objects.filter(connection=connection).for_owner(None).first()
    if token is not None:
        token.connection = connection  # its api_base_url resolves with it, no query
    context = {
        "redirect_uri": connection.redirect_uri,
        "events": Event.objects.filter(connection=connection).select_related("actor")[:10],
        "can_authorize": user.has_perm("oauthconn.authorize_connection"),
        "can_refresh": user.has_perm("oauthconn.refresh_connection"),
        "can_disconnect": user.has_perm("oauthconn.disconnect_connection"),
        "insecure_dev": oauthconn_settings.ALLOW_INSECURE_LOOPBACK,
        # R8: name the host the browser is about to be sent to.
        "authorize_host": urlsplit(connection.provider.authorization_endpoint).netloc
        if connection.uses_browser
        else "",
        "has_grant_fields": has_grant_fields(connection.api_base_url),
        **signing_key_context(request, connection),
        "features": connection_features(connection),
    }
    if not connection.is_shared:
        # A grant per user: the first GRANTS_LISTED in the order of the owner's unique index
        # (no sort of every grant), and a link to the token list for all of them.
        order = "owner_key" if connection.per_owner else "owner_id"
        grants = Token.objects.filter(connection=connection).select_related("owner")
        tokens = list(grants.order_by(order)[: GRANTS_LISTED + 1])
        for t in tokens:
            t.connection = connection
        owners = load_owners(t.owner_key for t in tokens if t.owner_key)
        context["user_tokens"] = [
            (t, badge(token_status(t)), owners.get(t.owner_key) or t.owner or t.owner_key)
            for t in tokens[:GRANTS_LISTED]
        ]
        if len(tokens) > GRANTS_LISTED:
            context["all_grants_url"] = (
                reverse("admin:oauthconn_token_changelist") + f"?connection={connection.pk}"
            )
        return context
    requested = connection.scope_list
    granted = token.granted_scopes if token and token.access_token is not None else []
    context.update(
        token=token,
        status=token_status(token),
        status_badge=badge(token_status(token)),
        connected=token is not None and token.is_connected,
        renewable=token is not None and token.is_connected and pages.renewable(connection),
        requested_scopes=requested,
        granted_scopes=granted,
        missing_scopes=[s for s in requested if granted and s not in granted],
        requestable_scopes=[s for s in requestable(connection) if s not in granted],
    )
    return context

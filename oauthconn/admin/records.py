from __future__ import annotations

from django.contrib import admin

from oauthconn.models import Event, Token


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Token)
class TokenAdmin(ReadOnlyAdmin):
    """Token metadata only: the encrypted fields are not editable and never listed."""

    list_display = ["connection", "owner", "status", "expires_at", "authorized_at", "refreshed_at"]
    list_filter = ["status", "connection"]
    list_select_related = ["connection", "owner"]
    fields = [
        "connection",
        "owner",
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


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "kind", "connection", "owner", "actor", "message"]
    list_filter = ["kind", "connection"]
    list_select_related = ["connection", "owner", "actor"]

from __future__ import annotations

from django.contrib import admin
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from oauthconn.admin.forms import ConnectionForm, ProviderForm
from oauthconn.models import Connection, Provider, Token


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ["name", "slug", "issuer", "preset"]
    search_fields = ["name", "slug", "issuer"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    form = ConnectionForm
    list_display = ["name", "slug", "provider", "grant_type", "per_user"]
    list_filter = ["grant_type", "per_user", "provider"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    change_form_template = "admin/oauthconn/connection/change_form.html"

    @method_decorator(sensitive_post_parameters("new_client_secret"))
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = extra_context or {}
        if object_id:
            connection = self.get_object(request, object_id)
            if connection is not None and not connection.per_user:
                extra_context["shared_token"] = Token.objects.filter(
                    connection=connection, owner__isnull=True
                ).first()
                extra_context["redirect_uri"] = connection.redirect_uri
        return super().changeform_view(request, object_id, form_url, extra_context)

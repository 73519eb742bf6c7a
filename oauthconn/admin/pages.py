"""The connection page's buttons: Refresh now, Test, Disconnect and Rotate key (Authorize
reuses the ``oauthconn:start`` view). Each is a POST with CSRF protection and its own permission
(SECURITY §3.3, §3.4); none of them renders a token, a secret or a private key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from oauthconn import flows
from oauthconn.exceptions import NotConnected, OAuthConnError
from oauthconn.flows.keys import KEY_TYPES, ROLLOVER_DAYS, current_key_type, rotate_key
from oauthconn.flows.outcomes import renewing_as
from oauthconn.flows.probe import probe_connection
from oauthconn.models import ClientAuthMethod, Connection, Token, TokenStatus

#: the ConnectionAdmin these pages belong to
ConnectionPages: TypeAlias = "admin.ModelAdmin[Connection]"


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


def connection_for(
    model_admin: ConnectionPages,
    request: HttpRequest,
    object_id: str,
    perm: str,
    *,
    per_user: bool = False,
) -> Connection:
    """The connection ``object_id``, if the user holds ``oauthconn.<perm>``.

    Shared connections only, unless ``per_user``: the buttons that act on a grant leave
    per-user grants to their users; the key pair belongs to the connection itself.
    """
    if request.method != "POST":
        raise PermissionDenied("Use the buttons on the connection page (POST only).")
    connection = model_admin.get_object(request, object_id)
    if connection is None:
        raise Http404("No such connection.")
    if not request.user.has_perm(f"oauthconn.{perm}"):
        raise PermissionDenied
    if not connection.is_shared and not per_user:
        raise PermissionDenied("Per-user and per-owner connections are managed by their owners.")
    return connection


def back(connection: Connection) -> HttpResponse:
    return HttpResponseSeeOther(reverse("admin:oauthconn_connection_change", args=[connection.pk]))


def refresh_view(
    model_admin: ConnectionPages, request: HttpRequest, object_id: str
) -> HttpResponse:
    """Renew the shared token now (a refresh, or a new client credentials token)."""
    connection = connection_for(model_admin, request, object_id, "refresh_connection")
    if needs_reauth(connection):
        # The provider refused the grant: a refresh would only be refused again.
        messages.warning(request, f"{connection.name} needs reauthorization: authorize it again.")
        return back(connection)
    if not renewable(connection):
        # A forced renewal without a refresh token would end a still-valid grant.
        messages.warning(
            request,
            f"{connection.name} has no refresh token: authorize it again for a new access token.",
        )
        return back(connection)
    try:
        with renewing_as(actor=request.user):
            renewal = flows.renew_now(connection, None)
    except OAuthConnError as err:
        messages.error(request, f"{connection.name}: the refresh failed: {err}")
        return back(connection)
    if not renewal.renewed:
        # The flow served the still-valid old token: saying "a new access token" would lie.
        messages.warning(request, f"{connection.name}: nothing was renewed: {renewal.reason}")
        return back(connection)
    until = when(renewal.token.expires_at)
    messages.success(request, f"{connection.name}: a new access token, valid until {until}.")
    return back(connection)


def when(moment: datetime | None) -> str:
    """A time as the admin's pages show it (DATETIME_FORMAT, current time zone): messages
    and the page beside them must agree."""
    if moment is None:
        return "an unknown time"
    return date_format(timezone.localtime(moment), "DATETIME_FORMAT")


def needs_reauth(connection: Connection) -> bool:
    return Token.objects.filter(
        connection=connection, owner__isnull=True, owner_key="", status=TokenStatus.NEEDS_REAUTH
    ).exists()


def renewable(connection: Connection) -> bool:
    """True when "Refresh now" can get a new access token without the user."""
    if not connection.uses_browser:
        return True
    token = Token.objects.filter(connection=connection).for_owner(None).first()
    return token is not None and token.is_connected and token.refresh_token is not None


def test_view(model_admin: ConnectionPages, request: HttpRequest, object_id: str) -> HttpResponse:
    """Call the userinfo endpoint or the test path and show status and a short body."""
    connection = connection_for(model_admin, request, object_id, "refresh_connection")
    context = {**page_context(model_admin, request, connection, "Test")}
    try:
        context["result"] = probe_connection(connection)
    except OAuthConnError as err:
        context["error"] = str(err)
    return TemplateResponse(request, "admin/oauthconn/connection/test_result.html", context)


def disconnect_view(
    model_admin: ConnectionPages, request: HttpRequest, object_id: str
) -> HttpResponse:
    """First POST: the confirmation page. Confirmed POST: revoke at the provider, then wipe."""
    connection = connection_for(model_admin, request, object_id, "disconnect_connection")
    try:
        token = flows.connected_grant(connection, None)
    except NotConnected:
        messages.info(request, f"{connection.name} was not connected.")
        return back(connection)
    if request.POST.get("confirm") != "yes":
        context = page_context(model_admin, request, connection, "Disconnect")
        context["revocation_endpoint"] = connection.provider.revocation_endpoint
        return TemplateResponse(
            request, "admin/oauthconn/connection/disconnect_confirm.html", context
        )
    result = flows.disconnect(token, actor=request.user)
    level = messages.WARNING if result.revoked_at_provider is False else messages.SUCCESS
    messages.add_message(request, level, f"{connection.name}: {result.message}")
    return back(connection)


def rotate_key_view(
    model_admin: ConnectionPages, request: HttpRequest, object_id: str
) -> HttpResponse:
    """Give a private_key_jwt connection a new key pair; the old public key stays published."""
    connection = connection_for(model_admin, request, object_id, "change_connection", per_user=True)
    if connection.client_auth_method != ClientAuthMethod.PRIVATE_KEY_JWT:
        messages.error(request, f"{connection.name} does not sign JWTs: it has no key to rotate.")
        return back(connection)
    kind = request.POST.get("kind") or current_key_type(connection) or "RSA"
    if kind not in KEY_TYPES:
        messages.error(request, f"Choose a key type: {', '.join(KEY_TYPES)}.")
        return back(connection)
    old_kid = connection.private_key_id
    kid = rotate_key(connection, kind)
    model_admin.log_change(request, connection, f"Rotated the signing key (new key id {kid}).")
    kept = (
        f" The previous public key ({old_kid}) stays published at the JWKS URL for "
        f"{ROLLOVER_DAYS} days, so the provider can pick up the new one."
        if old_kid
        else ""
    )
    messages.success(request, f"{connection.name}: new {kind} key {kid} signs from now on.{kept}")
    return back(connection)


def page_context(
    model_admin: ConnectionPages, request: HttpRequest, connection: Connection, title: str
) -> dict[str, Any]:
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "original": connection,
        "title": f"{title}: {connection.name}",
    }

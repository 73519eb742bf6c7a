"""Start, callback, disconnect and the user's own connections. Thin: parse, call a flow, answer."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.http import require_GET, require_POST

from oauthconn import flows
from oauthconn.exceptions import AuthorizationFailed, OAuthConnError
from oauthconn.flows.keys import public_jwks
from oauthconn.models import Connection, Token

logger = logging.getLogger("oauthconn")


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


def private(response: HttpResponse) -> HttpResponse:
    """The callback and redirects to a provider, whose URLs carry codes and state: no caching,
    no Referer to anyone (R19).

    Never for a page that holds a POST form: under ``no-referrer`` browsers send
    ``Origin: null`` with the form, and Django's CSRF check refuses it. Use :func:`own_page`.
    """
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response


def own_page(response: HttpResponse) -> HttpResponse:
    """A user's page about their connections, with POST forms: not cached, and a Referer
    (so an Origin on its forms) for this site only, whatever the project's default."""
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "same-origin"
    return response


def owner_for(request: HttpRequest, connection: Connection, permission: str):
    """The owner a user may act for on this connection, or PermissionDenied.

    Shared connections need staff with the model permission; a per-user connection's grant
    belongs to the signed-in user.
    """
    if connection.per_user:
        return request.user
    if request.user.is_staff and request.user.has_perm(f"oauthconn.{permission}"):
        return None
    raise PermissionDenied


def safe_return_to(request: HttpRequest, target: str) -> str:
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return ""


def landing_url(request: HttpRequest, connection: Connection, return_to: str = "") -> str:
    """Where to go after a flow: the checked return target, else the connection's page."""
    if safe_return_to(request, return_to):
        return return_to
    if not connection.per_user and request.user.is_staff:
        return reverse("admin:oauthconn_connection_change", args=[connection.pk])
    return reverse("oauthconn:my_connections")


@require_POST
@login_required
@xframe_options_deny
def start(request: HttpRequest, slug: str) -> HttpResponse:
    """POST-only (R8): begin an authorization and send the browser to the provider."""
    connection = get_object_or_404(Connection.objects.select_related("provider"), slug=slug)
    owner = owner_for(request, connection, "authorize_connection")
    return_to = safe_return_to(request, request.POST.get("next", ""))
    try:
        if not connection.uses_browser:
            flows.renew(connection, owner, force=True)
            messages.success(request, f"{connection.name}: a new access token was obtained.")
            return HttpResponseSeeOther(landing_url(request, connection, return_to))
        url = flows.start_authorization(
            connection,
            user=request.user,
            session=request.session,
            owner=owner,
            return_to=return_to,
        )
    except OAuthConnError as err:
        messages.error(request, f"{connection.name}: {err}")
        return HttpResponseSeeOther(landing_url(request, connection, return_to))
    return private(HttpResponseRedirect(url))


@require_GET
@never_cache
def callback(request: HttpRequest, slug: str) -> HttpResponse:
    """The redirect URI: check, redeem, store, then 303 to a clean URL (R16, R19)."""
    if not request.user.is_authenticated:
        return error_page(
            request,
            "Your session ended before the provider sent you back. "
            "Sign in and start the authorization again.",
            status=400,
        )
    try:
        token = flows.complete_authorization(
            slug, request.GET, user=request.user, session=request.session
        )
    except AuthorizationFailed as err:
        logger.warning("oauthconn callback refused: connection=%s code=%s", slug, err.code)
        return error_page(request, str(err), status=400)
    except OAuthConnError as err:
        logger.warning("oauthconn code exchange failed: connection=%s code=%s", slug, err.code)
        return error_page(request, f"The authorization failed: {err}", status=502)
    connection = token.connection
    messages.success(request, f"{connection.name} is connected.")
    return private(HttpResponseSeeOther(landing_url(request, connection)))


def error_page(request: HttpRequest, message: str, *, status: int) -> HttpResponse:
    response = render(request, "oauthconn/callback_error.html", {"message": message}, status=status)
    return private(response)


@require_POST
@login_required
@xframe_options_deny
def disconnect(request: HttpRequest, slug: str) -> HttpResponse:
    connection = get_object_or_404(Connection.objects.select_related("provider"), slug=slug)
    owner = owner_for(request, connection, "disconnect_connection")
    token = Token.objects.filter(connection=connection).for_owner(owner).first()
    if token is None or not token.is_connected:
        messages.info(request, f"{connection.name} was not connected.")
    else:
        result = flows.disconnect(token, actor=request.user)
        level = messages.WARNING if result.revoked_at_provider is False else messages.SUCCESS
        messages.add_message(request, level, f"{connection.name}: {result.message}")
    return HttpResponseSeeOther(landing_url(request, connection, request.POST.get("next", "")))


@login_required
@never_cache
@xframe_options_deny
def my_connections(request: HttpRequest) -> HttpResponse:
    """The per-user connections the signed-in user may connect, with their own status."""
    connections = Connection.objects.filter(per_user=True).select_related("provider")
    tokens = {
        t.connection_id: t
        for t in Token.objects.filter(owner=request.user, connection__per_user=True)
    }
    rows = [(c, tokens.get(c.pk)) for c in connections]
    return own_page(render(request, "oauthconn/my_connections.html", {"rows": rows}))


@require_GET
def jwks(request: HttpRequest, slug: str) -> HttpResponse:
    """The public keys of a private_key_jwt connection (RFC 7517 §5), for the provider to fetch.

    Public by design: it holds public keys only. 404 when the connection has none.
    """
    connection = get_object_or_404(Connection, slug=slug)
    key_set = public_jwks(connection)
    if not key_set["keys"]:
        raise Http404("This connection publishes no keys.")
    response = JsonResponse(key_set, content_type="application/jwk-set+json")
    response["Cache-Control"] = "public, max-age=300"
    return response

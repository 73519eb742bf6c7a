"""Request more scopes (incremental authorization, docs/scopes.md). Thin, as views.py.

One view for every way in: the link of ``ScopesRequired.authorize_url`` (site code sends the
person there), the "Request more access" form of "Your connections" and the admin's
"Request more scopes". GET only asks (it creates no attempt, so a forged link cannot start
anything); POST, with CSRF protection, starts the authorization (R8).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.http import require_http_methods

from oauthconn import flows
from oauthconn.exceptions import OAuthConnError, ScopeNotAllowed
from oauthconn.flows.scopes import check_requestable, not_granted
from oauthconn.models import Connection
from oauthconn.views import (
    HttpResponseSeeOther,
    landing_url,
    own_page,
    owner_for,
    private,
    safe_return_to,
)


@require_http_methods(["GET", "POST"])
@login_required
@xframe_options_deny
def request_scopes(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: ask the person to add the ``scope`` values to their grant. POST: start the
    authorization for the grant's scopes plus those, and send the browser to the provider.

    Only scopes the connection allows (R66) are accepted; the stored grant is not touched
    here: it keeps working until the callback stores the new one.
    """
    connection = get_object_or_404(Connection.objects.select_related("provider"), slug=slug)
    owner = owner_for(request, connection, "authorize_connection")
    data = request.POST if request.method == "POST" else request.GET
    return_to = safe_return_to(request, data.get("next", ""))
    try:
        wanted = check_requestable(connection, data.getlist("scope"))
    except ScopeNotAllowed as err:
        return refuse(request, connection, str(err), return_to)
    missing = not_granted(connection, owner, wanted)
    if not missing:
        messages.info(request, f"{connection.name} already has {' '.join(wanted)}.")
        return HttpResponseSeeOther(landing_url(request, connection, return_to))
    if request.method == "GET":
        return ask(request, connection, missing=missing, return_to=return_to)
    try:
        url = flows.start_authorization(
            connection,
            user=request.user,
            session=request.session,
            owner=owner,
            return_to=return_to,
            extra_scopes=missing,
        )
    except OAuthConnError as err:
        messages.error(request, f"{connection.name}: {err}")
        return HttpResponseSeeOther(landing_url(request, connection, return_to))
    return private(HttpResponseRedirect(url))


def refuse(
    request: HttpRequest, connection: Connection, error: str, return_to: str
) -> HttpResponse:
    """A refused form goes back to its page with the reason; a refused link gets a page
    that says it (400), with no button."""
    if request.method == "POST":
        messages.error(request, error)
        return HttpResponseSeeOther(landing_url(request, connection, return_to))
    return ask(request, connection, error=error, return_to=return_to, status=400)


def ask(
    request: HttpRequest,
    connection: Connection,
    *,
    missing: list[str] | None = None,
    error: str = "",
    return_to: str = "",
    status: int = 200,
) -> HttpResponse:
    """The question, in the admin's look for a shared connection's staff, else the site's."""
    context = {
        "connection": connection,
        "scopes": missing or [],
        "error": error,
        "return_to": return_to,
        "back": landing_url(request, connection, return_to),
        # R8: name the host the browser is about to be sent to.
        "authorize_host": urlsplit(connection.provider.authorization_endpoint).netloc,
    }
    if not connection.per_user and request.user.is_staff:
        context |= {**admin.site.each_context(request), "opts": Connection._meta}
        template = "admin/oauthconn/connection/request_scopes.html"
    else:
        template = "oauthconn/request_scopes.html"
    return own_page(render(request, template, context, status=status))

"""Start, callback, disconnect and the user's own connections. Thin: parse, call a flow, answer."""

from __future__ import annotations

import logging
import secrets
import traceback
from typing import TYPE_CHECKING, TypeVar

from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import SuspiciousOperation
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseRedirect,
    JsonResponse,
    QueryDict,
)
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from oauthconn import flows
from oauthconn.exceptions import (
    AuthorizationFailed,
    NotConnected,
    NotPermitted,
    OAuthConnError,
    ProviderTimeout,
)
from oauthconn.flows.access import owner_for as permitted_owner
from oauthconn.flows.authorization import requested_by, started_from
from oauthconn.flows.keys import public_jwks
from oauthconn.flows.outcomes import renewing_as
from oauthconn.flows.switch import old_and_new
from oauthconn.models import Connection, PendingSwitch, Token

if TYPE_CHECKING:
    from oauthconn.types import Owner

logger = logging.getLogger("oauthconn")

#: Any response; private() hands back the type it got (a DRF Response stays a Response).
AnyResponse = TypeVar("AnyResponse", bound=HttpResponse)


class HttpResponseSeeOther(HttpResponseRedirect):
    status_code = 303


def private(response: AnyResponse) -> AnyResponse:
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


def owner_for(request: HttpRequest, connection: Connection, permission: str) -> Owner:
    """The owner the signed-in user may act for on this connection, or NotPermitted (a
    PermissionDenied, so 403); the rule itself lives in :mod:`oauthconn.flows.access`."""
    return permitted_owner(connection, request.user, permission)


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
        with renewing_as(actor=request.user):
            outcome = flows.connect(
                connection, owner, user=request.user, session=request.session, return_to=return_to
            )
    except OAuthConnError as err:
        messages.error(request, f"{connection.name}: {err}")
        return HttpResponseSeeOther(landing_url(request, connection, return_to))
    if isinstance(outcome, flows.Redirect):
        return private(HttpResponseRedirect(outcome.url))
    say_what_was_renewed(request, connection, outcome.renewal)
    return HttpResponseSeeOther(landing_url(request, connection, return_to))


def say_what_was_renewed(
    request: HttpRequest, connection: Connection, renewal: flows.Renewal
) -> None:
    if renewal.renewed:
        messages.success(request, f"{connection.name}: a new access token was obtained.")
    else:
        messages.warning(request, f"{connection.name}: nothing was renewed: {renewal.reason}")


@csrf_exempt  # a POSTed callback must still end its attempt (then it is refused); see flows
@never_cache
@sensitive_variables()
def callback(request: HttpRequest, slug: str) -> HttpResponse:
    """The redirect URI (R16, R19): take the parameters out of the request, complete the flow,
    and always answer 303 to a clean URL, so neither browser history, a Referer, a log
    record nor an error report of this request or the next one carries the code or state."""
    query = take_parameters(request)
    return_to = safe_return_to(request, started_from(query, session=request.session))
    requested = requested_by(query, session=request.session)
    try:
        token = flows.complete_authorization(
            slug, query, user=request.user, session=request.session, method=request.method or ""
        )
    except OAuthConnError as err:
        logger.warning("oauthconn callback refused: connection=%s code=%s", slug, err.code)
        result = failure(request, slug, str(err), status=failure_status(err), back=return_to)
        return private(HttpResponseSeeOther(remember_result(request, result)))
    except Exception as err:
        # A bug, not a provider: keep the traceback, but drop the frames' local variables
        # (the code among them) before any reporter or error tracker can read them.
        query = {}
        traceback.clear_frames(err.__traceback__)
        logger.error("oauthconn callback failed: connection=%s", slug, exc_info=err)
        message = "The authorization failed because of an error on this site."
        result = failure(request, slug, message, status=500, back=return_to)
        return private(HttpResponseSeeOther(remember_result(request, result)))
    if isinstance(token, flows.HeldSwitch):  # another account: ask first (defect 7b)
        return private(HttpResponseSeeOther(reverse("oauthconn:switch", args=[token.key])))
    connection = token.connection
    # Only the added scopes: Google reports "email" as a URL, so a check of the connection's
    # own scopes would warn on every sign-in (the event and the admin page still list them).
    added = [scope for scope in requested if scope not in connection.scope_list]
    say_connected(request, connection, [scope for scope in added if not token.has_scope(scope)])
    return private(HttpResponseSeeOther(landing_url(request, connection, return_to)))


def say_connected(request: HttpRequest, connection: Connection, missing: list[str]) -> None:
    """The callback's success message; an upgrade granted without some of the scopes it
    added (``missing``) says which (docs/scopes.md)."""
    if missing:
        provider = connection.provider.name
        messages.warning(
            request,
            f"{connection.name} is connected, but {provider} did not grant: {' '.join(missing)}.",
        )
    else:
        messages.success(request, f"{connection.name} is connected.")


#: request.META keys that may carry the raw query string (WSGI, gunicorn, uWSGI)
_RAW_QUERY_KEYS = ("QUERY_STRING", "REQUEST_URI", "RAW_URI")


def take_parameters(request: HttpRequest) -> dict[str, list[str]]:
    """The callback's parameters (query and form), removed from ``request``.

    Django's request logging and error reports print the request (its repr holds the full
    path with the query, the reports its GET, POST and META); after this, they show none.
    """
    try:
        query = {name: request.GET.getlist(name) for name in request.GET}
        if request.method == "POST":
            for name in request.POST:
                query.setdefault(name, []).extend(request.POST.getlist(name))
    except SuspiciousOperation:  # too many fields, too large: refused as malformed
        query = {}
    request.GET = QueryDict()
    request.POST = QueryDict()
    for key in _RAW_QUERY_KEYS:
        if key in request.META:
            request.META[key] = ""
    return query


def failure_status(err: OAuthConnError) -> int:
    """The result page's status: the callback's fault, the user's, or the provider's."""
    if isinstance(err, NotPermitted):
        return 403
    if isinstance(err, AuthorizationFailed):
        return 400
    return 504 if isinstance(err, ProviderTimeout) else 502


def failure(request: HttpRequest, slug: str, message: str, *, status: int, back: str = "") -> dict:
    """What the result page shows: fixed sentences and sanitized provider text, no secret.

    ``back`` is where the flow started (checked), else the connection's landing page.
    """
    connection = Connection.objects.filter(slug=slug).first()
    return {
        "status": status,
        "message": message,
        "slug": connection.slug if connection else "",
        "name": connection.name if connection else "",
        "back": landing_url(request, connection, back) if connection else back,
        "back_label": back_label(request, connection, back),
        "admin": bool(connection and not connection.per_user and request.user.is_staff),
    }


def back_label(request: HttpRequest, connection: Connection | None, back: str) -> str:
    """The result page's link text, naming the page it leads to."""
    usual = landing_url(request, connection) if connection is not None else ""
    if back and back != usual:
        return "Back to where you started"
    if connection is not None and usual != reverse("oauthconn:my_connections"):
        return f"Back to {connection.name}"
    return "Back to your connections"


#: session key of the last few callback results, by a short random id
RESULTS_SESSION_KEY = "oauthconn.results"
_KEPT_RESULTS = 5


def remember_result(request: HttpRequest, result: dict) -> str:
    """Keep ``result`` in this browser's session; return the URL of its page."""
    key = secrets.token_urlsafe(6)
    kept = dict(list(request.session.get(RESULTS_SESSION_KEY, {}).items())[-_KEPT_RESULTS + 1 :])
    kept[key] = result
    request.session[RESULTS_SESSION_KEY] = kept
    return reverse("oauthconn:callback_result", args=[key])


@require_GET
@never_cache
@xframe_options_deny
def callback_result(request: HttpRequest, key: str) -> HttpResponse:
    """The outcome of a refused or failed callback, for the browser that made it."""
    result = request.session.get(RESULTS_SESSION_KEY, {}).get(key)
    if result is None:
        message = "There is no authorization result to show here (it belongs to another browser)."
        result = failure(request, "", message, status=404)
    connection = Connection.objects.filter(slug=result["slug"]).first() if result["slug"] else None
    context = {"result": result, "connection": connection}
    if result["admin"] and connection is not None and request.user.is_staff:
        context |= {**admin.site.each_context(request), "opts": Connection._meta}
        template = "admin/oauthconn/connection/callback_result.html"
    else:
        template = "oauthconn/callback_result.html"
    response = private(render(request, template, context, status=result["status"]))
    # The callback logged this outcome once, without the request. Django's own record of a
    # 4xx/5xx page would attach the request, whose Referer may be the provider's page with
    # the state in its query; mark it as logged (as Django does for responses it logged).
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


@require_http_methods(["GET", "POST"])
@login_required
@never_cache
@xframe_options_deny
def switch_account(request: HttpRequest, key: str) -> HttpResponse:
    """Ask before a reauthorization as another account replaces the old one (defect 7b):
    GET shows both accounts, POST ``use_new`` or ``keep_old`` answers, once."""
    try:
        if request.method == "POST":
            return answer_switch(request, key)
        switch = flows.pending_switch(key, user=request.user, session=request.session)
    except OAuthConnError as err:
        slug = str(err.details.get("slug", ""))
        result = failure(request, slug, str(err), status=failure_status(err))
        return private(HttpResponseSeeOther(remember_result(request, result)))
    return own_page(render_switch(request, switch))


def answer_switch(request: HttpRequest, key: str) -> HttpResponse:
    if "use_new" in request.POST:
        answer = flows.confirm_switch(key, user=request.user, session=request.session)
    elif "keep_old" in request.POST:
        answer = flows.decline_switch(key, user=request.user, session=request.session)
    else:
        return HttpResponseBadRequest("Choose the new or the old account.")
    level = messages.SUCCESS if answer.complete else messages.WARNING
    messages.add_message(request, level, answer.message)
    return HttpResponseSeeOther(landing_url(request, answer.connection, answer.return_to))


def render_switch(request: HttpRequest, switch: PendingSwitch) -> HttpResponse:
    """The question, in the admin's look for a shared connection's staff, else the site's."""
    connection = switch.connection
    old, new = old_and_new(switch)
    context = {"switch": switch, "connection": connection, "old": old, "new": new}
    if not connection.per_user and request.user.is_staff:
        context |= {**admin.site.each_context(request), "opts": Connection._meta}
        return render(request, "admin/oauthconn/connection/switch_confirm.html", context)
    return render(request, "oauthconn/switch_confirm.html", context)


@require_POST
@login_required
@xframe_options_deny
def disconnect(request: HttpRequest, slug: str) -> HttpResponse:
    connection = get_object_or_404(Connection.objects.select_related("provider"), slug=slug)
    owner = owner_for(request, connection, "disconnect_connection")
    try:
        result = flows.disconnect_owner(connection, owner, actor=request.user)
    except NotConnected:
        messages.info(request, f"{connection.name} was not connected.")
    else:
        level = messages.WARNING if result.revoked_at_provider is False else messages.SUCCESS
        messages.add_message(request, level, f"{connection.name}: {result.message}")
    return HttpResponseSeeOther(landing_url(request, connection, request.POST.get("next", "")))


@login_required
@never_cache
@xframe_options_deny
def my_connections(request: HttpRequest) -> HttpResponse:
    """The per-user connections the signed-in user may connect, with their own status."""
    user = request.user
    if not user.is_authenticated:  # login_required sent anonymous users away; this tells mypy
        raise NotPermitted()
    connections = Connection.objects.filter(per_user=True).select_related("provider")
    mine = Token.objects.filter(owner=user, connection__per_user=True).select_related("connection")
    tokens = {t.connection_id: t for t in mine}
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

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.response import TemplateResponse
from oauth2_provider.views.generic import ProtectedResourceView
from oauth2_provider.views.mixins import ProtectedResourceMetadataMixin

from oauthconn import aget_connection, get_connection
from oauthconn.exceptions import (
    ConnectionNotFound,
    NotConnected,
    OAuthConnError,
    ReauthorizationRequired,
    TemporarilyUnavailable,
)


def home(request):
    return render(request, "home.html")


class DemoMe(ProtectedResourceMetadataMixin, ProtectedResourceView):
    """A tiny API of the demo provider: who the bearer token belongs to (None for a client).

    Answers a bad token with 401 and a Bearer challenge (RFC 6750 §3), as real APIs do.
    """

    def get(self, request, *args, **kwargs):
        owner = request.resource_owner
        return JsonResponse({"username": owner.username if owner else None})


def crm_account(request):
    """A page of the demo site that calls a connection: which CRM account the site uses.

    The example of docs/testing-your-site.md, whose tests drive it with oauthconn's fake
    provider: each answer of the provider becomes a page a person can read.
    """
    try:
        response = get_connection("crm").get("me")
    except (ConnectionNotFound, NotConnected):
        return HttpResponse("No CRM account is connected yet.", status=503)
    except ReauthorizationRequired:
        return HttpResponse("The CRM connection must be authorized again.", status=503)
    except TemporarilyUnavailable:
        return HttpResponse("The CRM cannot be reached; please try again later.", status=503)
    if response.status_code == 429:
        retry_after = response.headers.get("Retry-After", "60")
        return HttpResponse("The CRM is busy.", status=503, headers={"Retry-After": retry_after})
    response.raise_for_status()
    return JsonResponse({"crm_account": response.json()["sub"]})


async def demo_async(request, slug):
    """Site code in an async view (docs/async.md): the connection's test path, called on the
    event loop. A shared connection's answer is for staff only; ``?owner=me`` uses the
    signed-in user's own grant of a per-user connection."""
    user = await request.auser()
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    mine = request.GET.get("owner") == "me"
    if not mine and not user.is_staff:
        raise PermissionDenied("Only staff may call the site's shared connections here.")
    owner = user if mine else None
    context = {"slug": slug}
    try:
        connection = await aget_connection(slug, owner=owner)
        response = await connection.aget(connection.connection.test_path)
    except ConnectionNotFound as err:
        raise Http404(str(err)) from err
    except OAuthConnError as err:
        return TemplateResponse(request, "demo_async.html", {**context, "error": err}, status=502)
    context.update(
        name=connection.connection.name,
        url=str(response.request.url),
        status=response.status_code,
        body=response.text[:2000],  # the API's answer; the token is never shown
    )
    # A TemplateResponse: Django renders it in a thread hop, where the context processors
    # may read the session from the database.
    return TemplateResponse(request, "demo_async.html", context)

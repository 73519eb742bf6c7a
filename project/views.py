from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from oauth2_provider.views.generic import ProtectedResourceView
from oauth2_provider.views.mixins import ProtectedResourceMetadataMixin

from oauthconn import get_connection
from oauthconn.exceptions import ReauthorizationRequired, TemporarilyUnavailable


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
    except ReauthorizationRequired:
        return HttpResponse("The CRM connection must be authorized again.", status=503)
    except TemporarilyUnavailable:
        return HttpResponse("The CRM cannot be reached; please try again later.", status=503)
    if response.status_code == 429:
        retry_after = response.headers.get("Retry-After", "60")
        return HttpResponse("The CRM is busy.", status=503, headers={"Retry-After": retry_after})
    response.raise_for_status()
    return JsonResponse({"crm_account": response.json()["sub"]})

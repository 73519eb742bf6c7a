from django.http import JsonResponse
from django.shortcuts import render
from oauth2_provider.views.generic import ProtectedResourceView
from oauth2_provider.views.mixins import ProtectedResourceMetadataMixin


def home(request):
    return render(request, "home.html")


class DemoMe(ProtectedResourceMetadataMixin, ProtectedResourceView):
    """A tiny API of the demo provider: who the bearer token belongs to (None for a client).

    Answers a bad token with 401 and a Bearer challenge (RFC 6750 §3), as real APIs do.
    """

    def get(self, request, *args, **kwargs):
        owner = request.resource_owner
        return JsonResponse({"username": owner.username if owner else None})

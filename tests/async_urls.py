"""The demo site's URLs plus async views that only the tests need (tests/test_async.py)."""

from __future__ import annotations

from django.core.exceptions import SynchronousOnlyOperation
from django.http import JsonResponse
from django.urls import path

from oauthconn import aget_connection, get_connection
from project.urls import urlpatterns as demo_urlpatterns


async def sync_and_async_lookup(request, slug):
    """Issue 12's bug next to its fix: the sync lookup in an async view, then the async one."""
    try:
        get_connection(slug)
        sync = "worked"
    except SynchronousOnlyOperation as err:
        sync = type(err).__name__
    connection = await aget_connection(slug)
    response = await connection.aget("me/")
    return JsonResponse({"sync": sync, "async": response.json()})


async def access_token(request, slug):
    """The token an async caller gets (a test-only view: the demo never shows a token)."""
    connection = await aget_connection(slug)
    return JsonResponse({"access_token": await connection.aaccess_token()})


urlpatterns = [
    path("test-async/lookups/<slug:slug>/", sync_and_async_lookup),
    path("test-async/token/<slug:slug>/", access_token),
    *demo_urlpatterns,
]

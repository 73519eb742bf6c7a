"""Two views for measuring a valid token "across requests": one uses a connection, one does not."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from oauthconn import get_connection


def noop(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def use_token(request: HttpRequest, slug: str) -> HttpResponse:
    """What a view calling an API three times does: one connection, three token lookups."""
    connection = get_connection(slug)
    lengths = [len(connection.access_token) for _ in range(3)]
    return HttpResponse(str(sum(lengths)))

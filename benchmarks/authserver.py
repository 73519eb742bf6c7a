"""The authorization server of the benchmarks: the demo project's django-oauth-toolkit served by
Django's threaded development server in its own process, counting the token requests it sees.

    BENCH_ROLE=authserver DJANGO_SETTINGS_MODULE=benchmarks.settings \
        python -m benchmarks.authserver PORT
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections import Counter
from socketserver import ThreadingMixIn

from django.http import HttpRequest, HttpResponse, JsonResponse

TOKEN_PATH = "/demo-oauth/token/"
_lock = threading.Lock()
_seen: Counter[str] = Counter()


class CountingMiddleware:
    """Counts token requests by response status: what "token requests seen by the server" means."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path == TOKEN_PATH:
            error = ""
            if response.status_code >= 400:
                error = json.loads(response.content or b"{}").get("error", "")
            with _lock:
                _seen["total"] += 1
                _seen[f"status_{response.status_code}"] += 1
                if error:
                    _seen[f"error_{error}"] += 1
        return response


def stats(request: HttpRequest) -> JsonResponse:
    """GET: the counts since the last reset. POST: reset them."""
    with _lock:
        data = dict(_seen)
        if request.method == "POST":
            _seen.clear()
    return JsonResponse(data)


def serve(port: int) -> None:
    import django
    from django.core.servers import basehttp
    from django.core.wsgi import get_wsgi_application

    django.setup()

    class Server(ThreadingMixIn, basehttp.WSGIServer):
        daemon_threads = True
        # runserver's default backlog of 10 drops connections when 50 callers arrive at once.
        request_queue_size = 256

    class Handler(basehttp.WSGIRequestHandler):
        def setup(self) -> None:
            super().setup()
            # Without it, Nagle's algorithm holds the body back for the client's delayed ACK.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    httpd = Server(("127.0.0.1", port), Handler)
    httpd.set_app(get_wsgi_application())
    print("ready", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]))

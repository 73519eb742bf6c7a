"""Records the requests the in-process demo authorization server receives (the "AS log")."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class Seen:
    method: str
    path: str
    form: dict[str, list[str]]
    headers: dict[str, str] = field(default_factory=dict)


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[Seen] = []

    def add(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def to(self, suffix: str) -> list[Seen]:
        return [r for r in self.requests if r.path.endswith(suffix)]


AS_LOG = RequestLog()


class RecordingMiddleware:
    """Test-only middleware: logs calls to /demo-oauth/ and /demo-api/ with their form fields."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(("/demo-oauth/", "/demo-api/")):
            form = {}
            if request.method == "POST":
                form = {k: request.POST.getlist(k) for k in request.POST}
            headers = {"Authorization": request.headers.get("Authorization", "")}
            AS_LOG.add(Seen(request.method, request.path, form, headers))
        return self.get_response(request)

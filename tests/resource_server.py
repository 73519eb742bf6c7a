"""A small protected resource (an API) that publishes RFC 9728 metadata, for issue 13's tests.

Python's stdlib HTTP server on 127.0.0.1. ``documents`` maps a metadata path to the JSON it
serves (tests add hostile ones); the API itself lives under ``/api/``:

- ``GET /.well-known/oauth-protected-resource/api`` → the resource's metadata, naming the
  authorization server set in :attr:`ResourceServer.issuer`;
- ``GET /api/...`` without a valid token → 401 with
  ``WWW-Authenticate: Bearer resource_metadata="<metadata URL>"`` (RFC 9728 §5.1);
- with a JWT access token signed by the issuer (its JWKS) whose ``aud`` is this resource
  → 200 ``{"sub": ..., "aud": ...}``; any other token → 401 ``invalid_token``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt

WELL_KNOWN = "/.well-known/oauth-protected-resource"


@dataclass
class ResourceServer:
    base: str
    issuer: str = ""
    #: metadata path -> document (or a callable building it)
    documents: dict[str, Any] = field(default_factory=dict)
    #: paths under /api/ that answer 401 naming this metadata URL instead of the well-known one
    challenges: dict[str, str] = field(default_factory=dict)

    @property
    def resource(self) -> str:
        return f"{self.base}/api/"

    def metadata(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "authorization_servers": [self.issuer],
            "scopes_supported": ["read", "write"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Test API",
        }

    def reset(self) -> None:
        self.documents = {f"{WELL_KNOWN}/api": self.metadata}
        self.challenges = {}

    def verify(self, token: str) -> dict[str, Any]:
        keys = jwt.PyJWKClient(f"{self.issuer}/jwks", cache_keys=False)
        key = keys.get_signing_key_from_jwt(token)
        return jwt.decode(
            token, key.key, algorithms=["RS256"], audience=self.resource, issuer=self.issuer
        )


def _handler(server: ResourceServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet test output
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?")[0]
            document = server.documents.get(path)
            if document is not None:
                self._json(200, document() if callable(document) else document)
            elif path.startswith("/api/") or path in server.challenges:
                self._api(path)
            else:
                self._json(404, {"error": "not_found"})

        def _api(self, path: str) -> None:
            metadata_url = server.challenges.get(path, f"{server.base}{WELL_KNOWN}/api")
            header = self.headers.get("Authorization", "")
            if header.startswith("Bearer "):
                try:
                    claims = server.verify(header[7:])
                except jwt.PyJWTError as err:
                    self._json(401, {"error": "invalid_token", "detail": str(err)}, metadata_url)
                    return
                self._json(200, {"sub": claims.get("sub"), "aud": claims.get("aud")})
                return
            self._json(401, {"error": "unauthorized"}, metadata_url)

        def _json(self, status: int, body: Any, metadata_url: str = "") -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            if metadata_url:
                self.send_header("WWW-Authenticate", f'Bearer resource_metadata="{metadata_url}"')
            self.end_headers()
            self.wfile.write(raw)

    return Handler


def serve() -> Iterator[ResourceServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = ResourceServer(base=f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.RequestHandlerClass = _handler(state)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()

"""A small real authorization server built with Authlib, for ``private_key_jwt`` (RFC 7523).

django-oauth-toolkit cannot verify client assertions, so this server does: Authlib's
framework-neutral ``AuthorizationServer`` with its ``JWTBearerClientAssertion`` client
authentication and the client-credentials grant, behind a tiny WSGI app served on 127.0.0.1
by a daemon thread. The client's public keys are fetched over HTTP from the JWKS URL the
client registered (our ``oauthconn:jwks`` view), as a real provider would.

Only the pieces a test needs: ``POST /token`` (client credentials) and ``POST /revoke``
(which authenticates the client and answers 200, RFC 7009 §2.2). It accepts assertions whose
``aud`` is its issuer (R49) and refuses reused ``jti`` values.
"""

from __future__ import annotations

import json
import secrets
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    OAuth2Payload,
    OAuth2Request,
    grants,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc.jwk import KeySet

AUTH_METHOD = "private_key_jwt"


@dataclass
class Client(ClientMixin):
    client_id: str
    jwks_uri: str
    scope: str = "read"

    def get_client_id(self) -> str:
        return self.client_id

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == AUTH_METHOD

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(self.scope.split())
        return " ".join(s for s in (scope or "").split() if s in allowed)


class _Payload(OAuth2Payload):
    def __init__(self, form: dict[str, str]) -> None:
        self._form = form

    @property
    def data(self) -> dict[str, str]:
        return self._form

    @property
    def datalist(self) -> dict[str, list[str]]:
        return {k: [v] for k, v in self._form.items()}


class _Request(OAuth2Request):
    def __init__(self, method: str, uri: str, headers: dict, form: dict[str, str]) -> None:
        super().__init__(method, uri, headers=headers)
        self._form = form
        self.payload = _Payload(form)

    @property
    def args(self) -> dict:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


class _Assertion(JWTBearerClientAssertion):
    """Verifies the client's JWT with the keys at its registered JWKS URL (RFC 7523 §3)."""

    CLIENT_AUTH_METHOD = AUTH_METHOD

    def __init__(self, server: AuthlibServer) -> None:
        super().__init__(validate_jti=True, leeway=30)
        self.server = server

    def get_audiences(self) -> list[str]:
        return [self.server.issuer]

    def validate_jti(self, claims: dict, jti: str) -> bool:
        if jti in self.server.seen_jti:
            return False
        self.server.seen_jti.add(jti)
        return True

    def resolve_client_public_key(self, client: Client) -> KeySet:
        with urllib.request.urlopen(client.jwks_uri, timeout=5) as response:  # noqa: S310
            return KeySet.import_key_set(json.load(response))


class _ClientCredentials(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = [AUTH_METHOD]


class _Server(AuthorizationServer):
    def __init__(self, owner: AuthlibServer) -> None:
        super().__init__(scopes_supported=["read", "write"])
        self.owner = owner
        self.register_client_auth_method(AUTH_METHOD, _Assertion(owner))
        self.register_grant(_ClientCredentials)
        self.register_token_generator("default", self._token)

    def _token(self, grant_type, client, user=None, scope=None, expires_in=None, **kw) -> dict:
        return {
            "access_token": secrets.token_urlsafe(16),
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": scope or "",
        }

    def query_client(self, client_id: str) -> Client | None:
        return self.owner.clients.get(client_id)

    def save_token(self, token: dict, request: OAuth2Request) -> None:
        self.owner.issued.append({"client_id": request.client.client_id, **token})

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def create_oauth2_request(self, request: _Request) -> _Request:
        return request  # already built from the WSGI environ by AuthlibServer._app

    def handle_response(self, status: int, body: Any, headers: list) -> tuple:
        return status, json.dumps(body) if isinstance(body, dict) else body, headers


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@dataclass
class AuthlibServer:
    """Start with :meth:`start`; register clients in :attr:`clients`; stop with :meth:`stop`."""

    clients: dict[str, Client] = field(default_factory=dict)
    issued: list[dict] = field(default_factory=list)
    seen_jti: set[str] = field(default_factory=set)
    #: the form of every request received, for assertions about what the client sent
    received: list[dict[str, str]] = field(default_factory=list)

    def start(self) -> AuthlibServer:
        self._authlib = _Server(self)
        self._httpd: WSGIServer = make_server(
            "127.0.0.1", 0, self._app, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_port}"

    def _app(self, environ: dict, start_response) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = {k: v[0] for k, v in parse_qs(environ["wsgi.input"].read(length).decode()).items()}
        self.received.append(form)
        path = environ.get("PATH_INFO", "")
        headers = {
            k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")
        }
        request = _Request(environ["REQUEST_METHOD"], self.issuer + path, headers, form)
        if path == "/token":
            status, body, response_headers = self._authlib.create_token_response(request)
        elif path == "/revoke":
            status, body, response_headers = self._revoke(request)
        else:
            status, body, response_headers = 404, "{}", []
        start_response(f"{status} X", [("Content-Type", "application/json"), *response_headers])
        return [body.encode() if isinstance(body, str) else body]

    def _revoke(self, request: _Request) -> tuple:
        """RFC 7009 §2.1: authenticate the client, then 200 whatever the token."""
        from authlib.oauth2 import OAuth2Error

        try:
            self._authlib.authenticate_client(request, [AUTH_METHOD], endpoint="revocation")
        except OAuth2Error as error:
            return self._authlib.handle_error_response(request, error)
        return 200, "{}", []


@pytest.fixture
def authlib_server() -> Iterator[AuthlibServer]:
    """A private_key_jwt authorization server on 127.0.0.1, stopped after the test."""
    server = AuthlibServer().start()
    yield server
    server.stop()

"""``FakeProvider``: a small OAuth 2.0 / OpenID Connect provider serving real HTTP on
127.0.0.1, for testing site code that uses oauthconn connections.

::

    with FakeProvider() as provider:
        provider.connect("crm")                   # Provider + Connection + a connected grant
        get_connection("crm").get("me").json()    # {"sub": "fake-user", ...}
        provider.expire("crm")                    # the next call refreshes first
        provider.next_response("token", Reply.error("invalid_grant"))
        provider.requests                         # what it received

Endpoints: ``/authorize``, ``/token``, ``/revoke``, ``/jwks/<kid>``, ``/userinfo``,
``/.well-known/openid-configuration`` and ``/me``, a protected resource that answers with the
bearer token's subject, client and scope (more with :meth:`FakeProvider.add_resource`).

While a FakeProvider is open it turns ``OAUTHCONN["ALLOW_INSECURE_LOOPBACK"]`` on (oauthconn
refuses plain-http loopback URLs otherwise); closing it restores the setting.
"""

from __future__ import annotations

from collections import defaultdict, deque
from typing import TYPE_CHECKING, Any

import httpx
from django.conf import settings
from django.db import transaction
from django.test.utils import override_settings

from oauthconn.testing import grants
from oauthconn.testing.authserver import AuthServer
from oauthconn.testing.server import LoopbackServer, RecordedRequest, Reply

if TYPE_CHECKING:
    from oauthconn.models import Connection, Token
    from oauthconn.types import Actor, Owner


def allow_loopback() -> override_settings:
    """``override_settings`` turning ``ALLOW_INSECURE_LOOPBACK`` on, the rest of ``OAUTHCONN``
    kept: a context manager, a decorator, or ``enable()``/``disable()``."""
    current = getattr(settings, "OAUTHCONN", {})
    return override_settings(OAUTHCONN={**current, "ALLOW_INSECURE_LOOPBACK": True})


class FakeProvider:
    """A fake provider, running from construction until :meth:`close` (or the ``with`` end).

    ``access_token_lifetime`` is the ``expires_in`` it grants; ``rotate_refresh_tokens=False``
    makes refreshes keep the refresh token. ``slug`` names its ``Provider`` row (default
    ``fake-provider-<port>``, so two fake providers in one test never share a row).
    """

    def __init__(
        self,
        *,
        slug: str | None = None,
        access_token_lifetime: int = 3600,
        rotate_refresh_tokens: bool = True,
        loopback: bool = True,
    ) -> None:
        self._requests: list[RecordedRequest] = []
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._resources: dict[str, Any] = {}
        self._http = LoopbackServer(self._handle)
        self.url = self._http.url
        self.slug = slug or f"fake-provider-{self.url.rsplit(':', 1)[1]}"
        self.auth = AuthServer(issuer=self.url)
        self.auth.access_token_lifetime = access_token_lifetime
        self.auth.rotate_refresh_tokens = rotate_refresh_tokens
        self.jwks_path = f"/jwks/{self.auth.key.kid}"
        self._loopback = allow_loopback() if loopback else None
        if self._loopback is not None:
            self._loopback.enable()

    # --- the database side ---------------------------------------------------------------------

    def connect(
        self,
        slug: str = "fake",
        *,
        owner: Owner = None,
        scopes: str = "openid profile email",
        per_user: bool | None = None,
        subject: str | None = None,
        claims: dict[str, str] | None = None,
        actor: Actor = None,
        authorize: bool = True,
        **fields: Any,
    ) -> Connection:
        """Create the connection ``slug`` at this provider and authorize it, for ``owner``.

        A shared connection by default; ``owner=user`` makes it per-user (``per_user`` may
        say so explicitly) and passes the owner to oauthconn's own grant storage. Calling it
        again with another owner adds that owner's grant to the same connection. ``subject``
        names the account at the provider (default ``fake-user``, or ``user-<pk>`` for an
        owner) and ``claims`` its ID token display claims. Other keyword arguments are
        Connection fields (``grant_type``, ``client_auth_method``, ``token_lifetime``...).
        A client credentials connection is created without a grant: the first use fetches it;
        so is any connection with ``authorize=False``, for tests that go through the site's
        own connect pages (see :meth:`consent`).

        All or nothing: when the authorization fails (``deny_next_authorization``, a scripted
        token error) the exception propagates and no row is left behind.
        """
        if subject is None:
            subject = f"user-{owner.pk}" if owner is not None else "fake-user"
        if claims is not None:
            with self.auth.lock:
                self.auth.accounts[subject] = claims
        per_user = owner is not None if per_user is None else per_user
        with transaction.atomic():
            provider = grants.provider_row(self.auth, self.slug, self.jwks_path)
            connection = grants.connection_row(
                self.auth, provider, slug, per_user, {"scopes": scopes, **fields}
            )
            if authorize and connection.uses_browser:
                grants.authorize(self.auth, connection, owner=owner, subject=subject, actor=actor)
        return connection

    def consent(self, authorization_url: str, *, subject: str | None = None) -> str:
        """The browser at the provider: open ``authorization_url`` (where oauthconn's start
        view redirected to), consent as ``subject``, and return where the provider sends the
        browser back to (the site's callback URL with ``code``, ``state`` and ``iss``)."""
        if subject is not None:
            with self.auth.lock:
                self.auth.signed_in.append(subject)
        # A browser's request, not oauthconn's: no client of oauthconn.http is needed.
        response = httpx.get(authorization_url)
        if response.status_code != 302:
            raise AssertionError(f"The fake provider refused: {response.text}")
        return response.headers["Location"]

    def expire(self, connection: Connection | str, owner: Owner = None) -> Token:
        """Expire the grant's access token, in the database and here: the next use refreshes."""
        return grants.expire(self.auth, self._connection(connection), owner)

    def revoke(self, connection: Connection | str, owner: Owner = None) -> None:
        """Forget the grant here, as when the user revokes access at the provider: its tokens
        stop working and the next refresh gets ``invalid_grant``. The database is untouched."""
        grants.revoke(self.auth, self._connection(connection), owner)

    @staticmethod
    def _connection(connection: Connection | str) -> Connection:
        from oauthconn.models import Connection

        if isinstance(connection, str):
            return Connection.objects.select_related("provider").get(slug=connection)
        return connection

    # --- scripting -------------------------------------------------------------------------------

    def next_response(self, endpoint: str, *replies: Reply, **reply: Any) -> None:
        """Answer the next requests to ``endpoint`` ("token", "me", "revoke", "userinfo",
        "jwks" or a path added with :meth:`add_resource`) with ``replies``, one each, in
        order; then as usual. ``Reply.slow(2)`` delays the usual answer. Keywords make one
        more reply: ``next_response("token", status=429, headers={"Retry-After": "5"})``."""
        queued = [*replies, Reply(**reply)] if reply else list(replies)
        with self.auth.lock:
            self._scripts[_endpoint(endpoint)].extend(queued)

    script = next_response

    def deny_next_authorization(self, error: str = "access_denied") -> None:
        """The next authorization is refused: the redirect carries ``error``."""
        with self.auth.lock:
            self.auth.denials.append(error)

    def add_resource(self, path: str, json: Any) -> None:
        """Serve ``json`` at ``path`` to requests with a valid access token (else 401)."""
        with self.auth.lock:
            self._resources[_endpoint(path)] = json

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self.auth.lock:
            return list(self._requests)

    def requests_to(self, endpoint: str, grant_type: str | None = None) -> list[RecordedRequest]:
        """The requests to ``endpoint``; for "token", only those of ``grant_type`` if given."""
        name = _endpoint(endpoint)
        return [
            r
            for r in self.requests
            if self._name(r) == name and (grant_type is None or r.grant_type == grant_type)
        ]

    def reset(self) -> None:
        """Forget the recorded requests and any scripted replies not used yet."""
        with self.auth.lock:
            self._requests.clear()
            self._scripts.clear()
            self.auth.denials.clear()

    # --- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop serving and restore the loopback setting. Idempotent."""
        self._http.close()
        if self._loopback is not None:
            self._loopback.disable()
            self._loopback = None

    def __enter__(self) -> FakeProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<FakeProvider {self.url}>"

    # --- the HTTP side ---------------------------------------------------------------------------

    def _handle(self, request: RecordedRequest) -> Reply:
        with self.auth.lock:
            self._requests.append(request)
            queue = self._scripts.get(self._name(request))
            scripted = queue.popleft() if queue else None
            if scripted is not None and scripted.status is not None:
                return scripted
            reply = self._route(request)
        if scripted is not None:
            reply.delay = scripted.delay
        return reply

    def _name(self, request: RecordedRequest) -> str:
        # The JWKS lives under a per-provider path (see jwks_path); tests call it "jwks".
        return "jwks" if request.path == self.jwks_path else request.endpoint

    def _route(self, request: RecordedRequest) -> Reply:
        endpoint = request.endpoint
        if endpoint == ".well-known/openid-configuration":
            return Reply(json=self.metadata())
        if request.path == self.jwks_path:
            return Reply(json=self.auth.key.jwks())
        handler = {
            "authorize": self.auth.authorize,
            "token": self.auth.token,
            "revoke": self.auth.revoke,
        }.get(endpoint)
        if handler is not None:
            if endpoint != "authorize" and request.method != "POST":
                return Reply(status=405, json={"error": "invalid_request"})
            return handler(request)
        if endpoint in ("me", "userinfo") or endpoint in self._resources:
            return self._protected(request)
        return Reply(status=404, json={"error": "not_found", "path": request.path})

    def _protected(self, request: RecordedRequest) -> Reply:
        found = self.auth.bearer(request)
        if isinstance(found, Reply):
            return found
        if request.endpoint == "userinfo":
            if found.subject is None:
                return Reply(status=403, json={"error": "insufficient_scope"})
            return Reply(json={"sub": found.subject, **self.auth.claims_of(found.subject)})
        if request.endpoint == "me":
            return Reply(
                json={"sub": found.subject, "client_id": found.client_id, "scope": found.scope}
            )
        return Reply(json=self._resources[request.endpoint])

    def metadata(self) -> dict[str, Any]:
        """The discovery document (OIDC Discovery §3, RFC 8414)."""
        base = self.url
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "revocation_endpoint": f"{base}/revoke",
            "userinfo_endpoint": f"{base}/userinfo",
            "jwks_uri": f"{base}{self.jwks_path}",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email"],
            "authorization_response_iss_parameter_supported": True,
        }


def _endpoint(name: str) -> str:
    return name.strip("/")

"""The fake provider's authorization server: clients, codes, grants and tokens in memory.

Strict where real servers are strict, so a test against it catches what one against a real
provider would: registered redirect URIs and client authentication methods, single-use codes
bound to their client and redirect URI, PKCE S256 (RFC 7636 §4.6), and refresh token
rotation with reuse detection (RFC 9700 §4.14.2: a rotated-out refresh token presented again
revokes the whole grant). No Django here; the database side is :mod:`oauthconn.testing.grants`.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlencode

from oauthconn.oauth.pkce import code_challenge_s256
from oauthconn.testing.keys import SigningKey
from oauthconn.testing.server import RecordedRequest, Reply, redirect

#: seconds an authorization code may wait before it is redeemed
CODE_LIFETIME = 60


@dataclass
class Client:
    client_id: str
    secret: str | None
    redirect_uri: str
    auth_method: str  # client_secret_basic, client_secret_post or none


@dataclass
class Grant:
    """What one resource owner granted one client; tokens point at it."""

    client_id: str
    subject: str
    scope: str
    refresh_token: str | None = None
    rotated_out: set[str] = field(default_factory=set)
    revoked: bool = False


@dataclass
class Code:
    grant: Grant
    redirect_uri: str
    challenge: str | None
    nonce: str | None
    expires_at: float
    used: bool = False


@dataclass
class AccessToken:
    client_id: str
    subject: str | None
    scope: str
    expires_at: float
    grant: Grant | None = None
    revoked: bool = False

    def active(self) -> bool:
        grant_ok = self.grant is None or not self.grant.revoked
        return grant_ok and not self.revoked and self.expires_at > time.time()


class OAuthError(Exception):
    """An error response of the token endpoint (RFC 6749 §5.2)."""

    def __init__(self, error: str, description: str = "", status: int = 400) -> None:
        super().__init__(error)
        self.error, self.description, self.status = error, description, status

    def reply(self) -> Reply:
        headers = {"WWW-Authenticate": 'Basic realm="fake"'} if self.status == 401 else {}
        reply = Reply.error(self.error, self.status, self.description)
        reply.headers.update(headers)
        return reply


class AuthServer:
    """The endpoints' logic. Every public method is called under ``self.lock``."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.lock = threading.RLock()
        self.key = SigningKey()
        self.clients: dict[str, Client] = {}
        self.accounts: dict[str, dict[str, str]] = {}
        self.codes: dict[str, Code] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.denials: list[str] = []
        #: who the next authorizations sign in as (else login_hint, else "fake-user")
        self.signed_in: list[str] = []
        self.access_token_lifetime = 3600
        self.rotate_refresh_tokens = True

    # --- /authorize (RFC 6749 §4.1.1, §4.1.2) ------------------------------------------------

    def authorize(self, request: RecordedRequest) -> Reply:
        query = request.query
        client = self.clients.get(query.get("client_id", ""))
        if client is None or query.get("redirect_uri") != client.redirect_uri:
            # §4.1.2.1: never redirect to an unverified URI.
            return Reply(status=400, body="Unknown client or redirect_uri.")
        answer = {"state": query.get("state", ""), "iss": self.issuer}
        if query.get("response_type") != "code":
            answer["error"] = "unsupported_response_type"
        elif self.denials:
            answer["error"] = self.denials.pop(0)
        else:
            answer["code"] = self._new_code(client, query)
        return redirect(f"{client.redirect_uri}?{urlencode(answer)}")

    def _new_code(self, client: Client, query: dict[str, str]) -> str:
        method = query.get("code_challenge_method")
        challenge = query.get("code_challenge")
        subject = self.signed_in.pop(0) if self.signed_in else query.get("login_hint")
        subject = subject or "fake-user"
        grant = Grant(client.client_id, subject, query.get("scope", ""))
        code = secrets.token_urlsafe(24)
        self.codes[code] = Code(
            grant,
            redirect_uri=client.redirect_uri,
            challenge=challenge if method == "S256" else None,
            nonce=query.get("nonce"),
            expires_at=time.time() + CODE_LIFETIME,
        )
        return code

    # --- /token (RFC 6749 §4.1.3, §4.4, §6) --------------------------------------------------

    def token(self, request: RecordedRequest) -> Reply:
        try:
            client = self._authenticate(request)
            grant_type = request.form.get("grant_type")
            if grant_type == "authorization_code":
                payload = self._redeem(client, request.form)
            elif grant_type == "refresh_token":
                payload = self._refresh(client, request.form.get("refresh_token", ""))
            elif grant_type == "client_credentials":
                payload = self._issue(client, None, request.form.get("scope", ""), None)
            else:
                raise OAuthError("unsupported_grant_type")
        except OAuthError as err:
            return err.reply()
        return Reply(json=payload)

    def _authenticate(self, request: RecordedRequest) -> Client:
        """RFC 6749 §2.3.1: the registered method only, the secret compared in constant time."""
        basic = _basic_credentials(request.headers.get("authorization", ""))
        client_id = basic[0] if basic else request.form.get("client_id", "")
        client = self.clients.get(client_id)
        if client is None:
            raise OAuthError("invalid_client", "Unknown client.", 401)
        if client.auth_method == "client_secret_basic":
            sent = basic[1] if basic else None
        elif client.auth_method == "client_secret_post":
            sent = None if basic else request.form.get("client_secret")
        else:
            return client
        if sent is None or not hmac.compare_digest(sent, client.secret or ""):
            raise OAuthError("invalid_client", "Client authentication failed.", 401)
        return client

    def _redeem(self, client: Client, form: dict[str, str]) -> dict[str, Any]:
        code = self.codes.get(form.get("code", ""))
        if code is None or code.grant.client_id != client.client_id:
            raise OAuthError("invalid_grant", "Unknown authorization code.")
        if code.used:
            # §4.1.2: a code used twice revokes what it was exchanged for.
            code.grant.revoked = True
            raise OAuthError("invalid_grant", "The authorization code was already used.")
        code.used = True
        if code.expires_at < time.time():
            raise OAuthError("invalid_grant", "The authorization code expired.")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match.")
        _check_pkce(code.challenge, form.get("code_verifier"))
        return self._issue(client, code.grant, code.grant.scope, code.nonce, new_refresh=True)

    def _refresh(self, client: Client, refresh_token: str) -> dict[str, Any]:
        grant = self.refresh_tokens.get(refresh_token)
        if grant is None or grant.client_id != client.client_id:
            raise OAuthError("invalid_grant", "Unknown refresh token.")
        if grant.revoked:
            raise OAuthError("invalid_grant", "The grant was revoked.")
        if refresh_token in grant.rotated_out:
            grant.revoked = True  # RFC 9700 §4.14.2: reuse means theft; end the grant
            raise OAuthError("invalid_grant", "Refresh token reused; the grant is revoked.")
        return self._issue(client, grant, grant.scope, None, new_refresh=self.rotate_refresh_tokens)

    def _issue(
        self,
        client: Client,
        grant: Grant | None,
        scope: str,
        nonce: str | None,
        *,
        new_refresh: bool = False,
    ) -> dict[str, Any]:
        access = secrets.token_urlsafe(24)
        subject = grant.subject if grant else None
        expires_at = time.time() + self.access_token_lifetime
        self.access_tokens[access] = AccessToken(
            client.client_id, subject, scope, expires_at, grant
        )
        payload: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_token_lifetime,
            "scope": scope,
        }
        if grant is not None and new_refresh:
            if grant.refresh_token:
                grant.rotated_out.add(grant.refresh_token)
            grant.refresh_token = secrets.token_urlsafe(24)
            self.refresh_tokens[grant.refresh_token] = grant
        if grant is not None:
            payload["refresh_token"] = grant.refresh_token
        if grant is not None and "openid" in scope.split():
            payload["id_token"] = self.key.id_token(
                issuer=self.issuer,
                subject=grant.subject,
                audience=client.client_id,
                nonce=nonce,
                claims=self.claims_of(grant.subject),
            )
        return payload

    # --- /revoke (RFC 7009), /userinfo, protected resources -----------------------------------

    def revoke(self, request: RecordedRequest) -> Reply:
        try:
            client = self._authenticate(request)
        except OAuthError as err:
            return err.reply()
        token = request.form.get("token", "")
        grant = self.refresh_tokens.get(token)
        if grant is not None and grant.client_id == client.client_id:
            grant.revoked = True  # §2.1: revoking a refresh token ends its access tokens too
        access = self.access_tokens.get(token)
        if access is not None and access.client_id == client.client_id:
            access.revoked = True
        return Reply(status=200)  # §2.2: 200 for unknown tokens too

    def bearer(self, request: RecordedRequest) -> AccessToken | Reply:
        """The active access token of a request (RFC 6750 §2.1), or the 401 to answer."""
        found = self.access_tokens.get(request.bearer or "")
        if found is None or not found.active():
            challenge = 'Bearer error="invalid_token"' if request.bearer else "Bearer"
            return Reply(
                status=401, json={"error": "invalid_token"}, headers={"WWW-Authenticate": challenge}
            )
        return found

    def claims_of(self, subject: str) -> dict[str, str]:
        return self.accounts.get(subject) or {
            "name": f"Test user {subject}",
            "email": f"{subject}@example.test",
        }

    # --- what the test drives ------------------------------------------------------------------

    def grant_of(self, token: str) -> Grant | None:
        """The grant an access or refresh token belongs to."""
        access = self.access_tokens.get(token)
        return access.grant if access else self.refresh_tokens.get(token)

    def expire_access_tokens(self, grant: Grant) -> None:
        for access in self.access_tokens.values():
            if access.grant is grant:
                access.expires_at = min(access.expires_at, time.time() - 1)


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
    except ValueError:
        return None
    # §2.3.1: both are form-urlencoded before they are joined.
    return unquote_plus(client_id), unquote_plus(secret)


def _check_pkce(challenge: str | None, verifier: str | None) -> None:
    if challenge is None:
        if verifier is not None:
            raise OAuthError("invalid_grant", "code_verifier sent without a code_challenge.")
        return
    if verifier is None:
        raise OAuthError("invalid_grant", "code_verifier is missing.")
    if code_challenge_s256(verifier) != challenge:
        raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge.")

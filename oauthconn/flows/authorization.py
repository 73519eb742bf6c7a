"""Start and complete the authorization code flow (RFC 6749 §4.1, RFC 7636, RFC 9207).

An attempt is a ``PendingAuthorization`` row keyed by a hash of ``state``, bound to the browser
session that started it and to its user, valid for ``STATE_LIFETIME`` seconds and consumed
exactly once, before the code is redeemed.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal, overload

from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from oauthconn import http
from oauthconn.conf import oauthconn_settings
from oauthconn.crypto import Sealed
from oauthconn.exceptions import (
    AttemptAlreadyUsed,
    AuthorizationDenied,
    ConfigurationError,
    InvalidCallback,
    NotPermitted,
    OAuthConnError,
    SessionMissing,
    SignedOut,
)
from oauthconn.flows import scopes
from oauthconn.flows.access import check_may_authorize, check_still_authorizes
from oauthconn.flows.base_values import check_asked, grant_values
from oauthconn.flows.common import credentials_for, record_event, token_limits
from oauthconn.flows.dpop import new_binding
from oauthconn.flows.grants import store_grant
from oauthconn.flows.identity import verify_identity
from oauthconn.flows.par import pushed_url
from oauthconn.flows.switching import HeldSwitch, hold_switch, switching_from
from oauthconn.models import (
    Connection,
    EventKind,
    PendingAuthorization,
    Token,
)
from oauthconn.models.owners import owner_fields
from oauthconn.oauth import pkce
from oauthconn.oauth.authorize import append_query, authorization_parameters
from oauthconn.oauth.callback import CallbackParams, check_issuer, named_states, parse_callback
from oauthconn.oauth.token import exchange_code
from oauthconn.oauth.token_response import TokenSet

if TYPE_CHECKING:
    from oauthconn.types import Owner, RequestUser, User

#: the callback's query parameters, every value of each (a QueryDict fits too)
Query = Mapping[str, Sequence[str]]

#: session key of a random per-browser secret; attempts store only its hash
BROWSER_SESSION_KEY = "oauthconn.browser"


@overload
def browser_hash(session: SessionBase, *, create: Literal[True]) -> str: ...
@overload
def browser_hash(session: SessionBase, *, create: bool) -> str | None: ...
def browser_hash(session: SessionBase, *, create: bool) -> str | None:
    secret = session.get(BROWSER_SESSION_KEY)
    if secret is None:
        if not create:
            return None
        secret = session[BROWSER_SESSION_KEY] = secrets.token_urlsafe(32)
    return PendingAuthorization.hash(secret)


def start_authorization(
    connection: Connection,
    *,
    user: RequestUser,
    session: SessionBase,
    owner: Owner = None,
    return_to: str = "",
    extra_scopes: Sequence[str] = (),
    asked: Mapping[str, str] | None = None,
) -> str:
    """Record a new attempt and return the URL to send the browser to.

    ``owner`` must be the one :func:`~oauthconn.flows.access.authorizing_owner` allows
    ``user`` to authorize for, else NotPermitted: the callback checks the same again.
    ``extra_scopes`` asks for more than the grant holds (:mod:`oauthconn.flows.scopes`);
    each must be requestable, else ScopeNotAllowed. The stored grant is not touched.
    ``asked`` holds the values of the API base URL's ``{ask:...}`` fields (by name), checked
    now (GrantValueRefused) and stored with the grant when it arrives.
    """
    if not connection.uses_browser:
        raise ConfigurationError("Client credentials connections do not use a browser.")
    if not user.is_authenticated:  # authorizing_owner() refuses it too; this tells mypy
        raise NotPermitted()
    check_may_authorize(connection, user, owner)
    provider = connection.provider
    http.check_url(provider.authorization_endpoint, field="authorization endpoint")
    base_values = check_asked(connection.api_base_url, asked or {})
    state = pkce.make_state()
    verifier = pkce.make_code_verifier() if connection.uses_pkce else None
    extra = scopes.check_requestable(connection, extra_scopes) if extra_scopes else []
    scope_list = scopes.scopes_to_request(connection, owner, extra)
    nonce = pkce.make_nonce() if "openid" in scope_list else None
    params = authorization_parameters(
        provider.authorization_endpoint,
        client_id=connection.client_id,
        redirect_uri=connection.redirect_uri,
        scope=provider.scope_separator.join(scope_list),
        state=state,
        code_challenge=pkce.code_challenge_s256(verifier) if verifier else None,
        nonce=nonce,
        extra_params={
            **connection.extra_authorize_params,
            **scopes.incremental_params(connection, scope_list),
        },
        resource=connection.resource,
    )
    # The push comes before the attempt is recorded: a refused push stores nothing (R55).
    url = pushed_url(connection, params) if connection.pushes_requests else None
    attempt = PendingAuthorization(
        state_hash=PendingAuthorization.hash(state),
        browser_hash=browser_hash(session, create=True),
        connection=connection,
        **owner_fields(owner),
        user=user,
        code_verifier=verifier,
        nonce=nonce,
        redirect_uri=connection.redirect_uri,
        return_to=return_to,
        scope=" ".join(scope_list),
        base_values=base_values,
    )
    _record_attempt(attempt)
    return url or append_query(provider.authorization_endpoint, params)


def _record_attempt(attempt: PendingAuthorization) -> None:
    """Store a new attempt, valid for STATE_LIFETIME, after purging this browser's old ones."""
    now = timezone.now()
    attempt.created_at = now
    attempt.expires_at = now + timedelta(seconds=oauthconn_settings.STATE_LIFETIME)
    with transaction.atomic():
        _forget_old_attempts(attempt.browser_hash, now)
        attempt.save(force_insert=True)


def _forget_old_attempts(binding: str, now: datetime) -> None:
    """Purge expired attempts and keep at most MAX_PENDING_FLOWS per browser (R14)."""
    PendingAuthorization.objects.expired(now).delete()
    keep = max(oauthconn_settings.MAX_PENDING_FLOWS - 1, 0)
    stale = PendingAuthorization.objects.filter(
        browser_hash=binding, consumed_at__isnull=True
    ).order_by("-created_at")
    stale_ids = list(stale.values_list("pk", flat=True)[keep:])
    if stale_ids:
        PendingAuthorization.objects.filter(pk__in=stale_ids).delete()


def complete_authorization(
    slug: str, query: Query, *, user: RequestUser, session: SessionBase, method: str = "GET"
) -> Token | HeldSwitch:
    """Check the callback, consume its attempt, redeem the code once, store the grant.

    When the ID token names another account than the connected grant's, nothing is stored
    yet: a :class:`~oauthconn.flows.switching.HeldSwitch` is returned for the person to
    confirm (:mod:`oauthconn.flows.switch`); the old grant keeps working meanwhile.

    Every attempt the callback names by its ``state`` is ended first, whatever else is wrong
    with the callback (a repeated or oversized parameter, a POST, a signed-out browser), so a
    refused callback never leaves its attempt usable for a later one.

    Raises an ``AuthorizationFailed`` (forged, replayed, malformed or expired callback; ``iss``
    mismatch; an error from the provider; the user no longer allowed) or a
    ``ProviderError``/``TransportError`` from the token endpoint. In every failure the stored
    tokens are unchanged.
    """
    try:
        return _complete(slug, query, user=user, session=session, method=method)
    except OAuthConnError as err:
        # A provider's error text may echo what it was sent; the message goes to pages,
        # events and logs (also as the context of any record logged while handling it).
        err.args = (without(str(err), *_values_of(query)),)
        raise


def _complete(
    slug: str, query: Query, *, user: RequestUser, session: SessionBase, method: str
) -> Token | HeldSwitch:
    named = end_named_attempts(named_states(query))
    if method != "GET":
        raise InvalidCallback("The authorization response must come back as a GET request.")
    if not user.is_authenticated:
        raise SignedOut()
    params = parse_callback(query)
    attempt = check_attempt(slug, params, named, user=user, session=session)
    connection = attempt.connection
    try:
        owner = check_still_authorizes(connection, user, attempt)
        check_issuer(params, connection.provider.issuer, required=connection.provider.sends_issuer)
        if params.error:
            raise AuthorizationDenied(params.error, params.error_description)
        tokens = redeem_code(connection, attempt, params.code)
        if tokens.scope is None and attempt.scope:
            # RFC 6749 §5.1: no scope in the answer means exactly what this attempt asked for.
            tokens = dataclasses.replace(tokens, scope=attempt.scope)
        identity = verify_identity(connection, tokens, Sealed.reveal_optional(attempt.nonce))
        values = grant_values(connection, tokens, attempt)
    except Exception as err:
        record_event(
            EventKind.AUTHORIZATION_FAILED,
            connection,
            actor=user,
            message=without(str(err), *_values_of(query)),
            code=getattr(err, "code", "error"),
        )
        raise
    # Defect 7b: another account than the connected grant's waits for the person to confirm.
    old = switching_from(connection, owner, identity)
    if old is not None and identity is not None:
        return hold_switch(attempt, tokens, identity, old, base_values=values)
    return store_grant(
        connection,
        tokens,
        owner=owner,
        actor=user,
        identity=identity,
        requested=attempt.scope_list or None,
        base_values=values,
    )


def started_from(query: Query, *, session: SessionBase) -> str:
    """The ``return_to`` of the attempt this callback names, if this browser started it.

    Read before :func:`complete_authorization` ends the attempt, so the result page (success
    or failure) can lead back to where the flow began; "" when there is none to trust.
    """
    attempt = _started_here(query, session=session)
    return attempt.values_list("return_to", flat=True).first() or ""


def requested_by(query: Query, *, session: SessionBase) -> list[str]:
    """The scopes the attempt this callback names asked for (read before it ends, as
    :func:`started_from`), so the page can say which ones were not granted."""
    attempt = _started_here(query, session=session)
    return (attempt.values_list("scope", flat=True).first() or "").split()


def _started_here(query: Query, *, session: SessionBase) -> QuerySet[PendingAuthorization]:
    binding = browser_hash(session, create=False)
    hashes = [PendingAuthorization.hash(state) for state in named_states(query)]
    if binding is None or not hashes:
        return PendingAuthorization.objects.none()
    return PendingAuthorization.objects.filter(state_hash__in=hashes, browser_hash=binding)


def without(text: str, *values: str) -> str:
    """``text`` with ``values`` blanked: a provider's error text may echo the code it got."""
    for value in values:
        text = text.replace(value, "[redacted]")
    return text


def _values_of(query: Query) -> list[str]:
    """The callback's code and state values (the secrets in it; error texts are not)."""
    getlist = getattr(query, "getlist", None)
    found = []
    for name in ("code", "state"):
        values = getlist(name) if getlist else query.get(name, [])
        found += [values] if isinstance(values, str) else list(values)
    return [value for value in found if len(value) >= 8]  # shorter would blank plain words


#: an attempt named by a callback, and whether this callback was the one that used it up
Named = dict[str, tuple[PendingAuthorization, bool]]


def end_named_attempts(states: list[str]) -> Named:
    """Mark every attempt these ``state`` values name as used; return them by state hash.

    Sessions are not locked: two parallel callbacks may both find a row; only the one whose
    update marks it may go on. The verifier and nonce leave the row with that update (the
    copy read here is the one in use).
    """
    hashes = {PendingAuthorization.hash(state) for state in states}
    if not hashes:
        return {}
    found = PendingAuthorization.objects.select_related("connection__provider", "owner").filter(
        state_hash__in=hashes
    )
    named: Named = {}
    for attempt in found:
        used = PendingAuthorization.objects.filter(pk=attempt.pk, consumed_at__isnull=True).update(
            consumed_at=timezone.now(), code_verifier=None, nonce=None
        )
        named[attempt.state_hash] = (attempt, bool(used))
    return named


def check_attempt(
    slug: str, params: CallbackParams, named: Named, *, user: User, session: SessionBase
) -> PendingAuthorization:
    """The attempt of this callback, if it belongs to this browser, user and connection (R16)
    and this callback used it up; otherwise the fitting ``InvalidCallback``."""
    binding = browser_hash(session, create=False)
    if binding is None:
        raise SessionMissing()
    attempt, used_now = named.get(PendingAuthorization.hash(params.state), (None, False))
    if attempt is None or attempt.browser_hash != binding:
        raise InvalidCallback()
    if not used_now:
        raise AttemptAlreadyUsed()
    if attempt.expires_at <= timezone.now():
        raise InvalidCallback("This authorization attempt expired. Please start again.")
    if attempt.user_id != user.pk or attempt.connection.slug != slug:
        raise InvalidCallback()
    return attempt


def redeem_code(connection: Connection, attempt: PendingAuthorization, code: str) -> TokenSet:
    """Exchange the code at the token endpoint: one attempt, never retried (R24)."""
    with http.build_client() as client:
        tokens = exchange_code(
            client,
            connection.provider.token_endpoint,
            code=code,
            redirect_uri=attempt.redirect_uri,
            code_verifier=Sealed.reveal_optional(attempt.code_verifier),
            credentials=credentials_for(connection),
            extra_params=connection.token_params,
            # R53: every authorization binds its tokens to a new key (RFC 9449 §2).
            dpop=new_binding(connection),
            **token_limits(connection),
        )
    return tokens

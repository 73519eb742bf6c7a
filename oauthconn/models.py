"""Provider, Connection, Token, PendingAuthorization, PendingSwitch, Event and the outbox.

Models never touch the network.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import NotConnected
from oauthconn.fields import EncryptedTextField

if TYPE_CHECKING:
    from django.db.models.expressions import Combinable
    from django_stubs_ext import StrOrPromise

    from oauthconn.crypto import Sealed
    from oauthconn.types import Owner

URL_LENGTH = 2000


def url_field(
    verbose_name: StrOrPromise, **kwargs: Any
) -> models.CharField[str | int | Combinable, str]:
    # CharField, not URLField: URLField's validator rejects http://127.0.0.1:8000 without a TLD
    # rules we apply ourselves (oauthconn.http.check_url), and it must allow long URLs.
    return models.CharField(verbose_name, max_length=URL_LENGTH, blank=True, **kwargs)


class Provider(models.Model):
    """An authorization server: its endpoints and what it supports (from a preset or discovery)."""

    #: The URLs that say where the server is; moving any of them moves secrets (R1, R5).
    URL_FIELDS = (
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "revocation_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
    )
    #: What an admin or API client may set.
    SETTINGS_FIELDS = (
        "name",
        "slug",
        "preset",
        *URL_FIELDS,
        "scope_separator",
        "sends_issuer",
        "supported_grant_types",
        "code_challenge_methods",
        "token_endpoint_auth_methods",
        "scopes_supported",
        "id_token_signing_algs",
        "metadata",
    )

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=200)
    preset = models.CharField(max_length=100, blank=True, help_text=_("The preset it came from."))
    issuer = url_field(_("issuer"), help_text=_("Expected 'iss' (RFC 9207 / OpenID Connect)."))
    authorization_endpoint = url_field(_("authorization endpoint"))
    token_endpoint = url_field(_("token endpoint"))
    revocation_endpoint = url_field(_("revocation endpoint"))
    userinfo_endpoint = url_field(_("userinfo endpoint"))
    jwks_uri = url_field(_("JWKS URI"))
    scope_separator = models.CharField(max_length=5, default=" ")
    sends_issuer = models.BooleanField(
        _("sends iss in authorization responses"),
        default=False,
        help_text=_("RFC 9207: when set, a callback without 'iss' is rejected."),
    )
    supported_grant_types = models.JSONField(default=list, blank=True)
    code_challenge_methods = models.JSONField(default=list, blank=True)
    token_endpoint_auth_methods = models.JSONField(default=list, blank=True)
    scopes_supported = models.JSONField(default=list, blank=True)
    id_token_signing_algs = models.JSONField(
        default=list, blank=True, help_text=_("Allowed ID token algorithms; empty means RS256.")
    )
    metadata = models.JSONField(default=dict, blank=True, help_text=_("Discovery snapshot."))
    discovered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class GrantType(models.TextChoices):
    AUTHORIZATION_CODE = "authorization_code", _("Authorization code")
    AUTHORIZATION_CODE_PKCE = "authorization_code_pkce", _("Authorization code with PKCE")
    CLIENT_CREDENTIALS = "client_credentials", _("Client credentials")


class ClientAuthMethod(models.TextChoices):
    CLIENT_SECRET_BASIC = "client_secret_basic", _("HTTP Basic (client_secret_basic)")
    CLIENT_SECRET_POST = "client_secret_post", _("In the request body (client_secret_post)")
    NONE = "none", _("None: public client (PKCE required)")
    PRIVATE_KEY_JWT = "private_key_jwt", _("Signed JWT (private_key_jwt)")


class Connection(models.Model):
    """What an admin creates: a client registration at a provider, used by site code by slug."""

    slug = models.SlugField(unique=True, help_text=_("Site code calls get_connection(slug)."))
    name = models.CharField(max_length=200)
    provider = models.ForeignKey(Provider, on_delete=models.PROTECT, related_name="connections")
    grant_type = models.CharField(
        max_length=32, choices=GrantType.choices, default=GrantType.AUTHORIZATION_CODE_PKCE
    )
    client_id = models.CharField(max_length=500)
    client_secret = EncryptedTextField(_("client secret"))
    client_auth_method = models.CharField(
        max_length=32,
        choices=ClientAuthMethod.choices,
        default=ClientAuthMethod.CLIENT_SECRET_BASIC,
    )
    private_key = EncryptedTextField(_("private key (PEM)"))
    private_key_id = models.CharField(max_length=100, blank=True)
    published_jwks = models.JSONField(
        default=list, blank=True, help_text=_("Public keys served for private_key_jwt.")
    )
    scopes = models.TextField(blank=True, help_text=_("Requested scopes, space separated."))
    extra_authorize_params = models.JSONField(default=dict, blank=True)
    extra_token_params = models.JSONField(default=dict, blank=True)
    api_base_url = url_field(_("API base URL"), help_text=_("Tokens are sent only to this origin."))
    per_user = models.BooleanField(
        _("per-user"), default=False, help_text=_("Each user connects their own account.")
    )
    token_lifetime = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Seconds assumed when the provider does not say (no expires_in)."),
    )
    test_path = models.CharField(
        max_length=URL_LENGTH, blank=True, help_text=_("Path under the API base URL for 'Test'.")
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        # The admin's and the API's lists are ordered by name (migration 0005).
        indexes = [models.Index(fields=["name"], name="oauthconn_connection_name")]
        permissions = [
            ("authorize_connection", "Can authorize the connection (bind an account)"),
            ("refresh_connection", "Can refresh and test the connection"),
            ("disconnect_connection", "Can disconnect the connection"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def uses_pkce(self) -> bool:
        return self.grant_type == GrantType.AUTHORIZATION_CODE_PKCE

    @property
    def uses_browser(self) -> bool:
        return self.grant_type != GrantType.CLIENT_CREDENTIALS

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()

    @property
    def scope_string(self) -> str:
        """The scopes as the provider wants them joined (RFC 6749 §3.3 says a space)."""
        return self.provider.scope_separator.join(self.scope_list)

    @property
    def redirect_uri(self) -> str:
        """The one redirect URI of this connection, built from configuration (R12)."""
        base = oauthconn_settings.REDIRECT_BASE_URL.rstrip("/")
        return base + reverse("oauthconn:callback", args=[self.slug])


class TokenStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    FAILING = "failing", _("Failing")
    NEEDS_REAUTH = "needs_reauth", _("Needs reauthorization")
    REVOKED = "revoked", _("Revoked")


#: The largest share of an access token's lifetime that is spent as refresh leeway: a token
#: just obtained is served for at least the other three quarters of its life.
LEEWAY_SHARE = 0.25


#: Statuses in which a stored access token is served (failing: while it is still valid).
USABLE_STATUSES = (TokenStatus.ACTIVE, TokenStatus.FAILING)


class TokenQuerySet(models.QuerySet):
    def for_owner(self, owner: Owner) -> TokenQuerySet:
        if owner is None:
            return self.filter(owner__isnull=True)
        return self.filter(owner=owner)

    def usable(self) -> TokenQuerySet:
        """The rows of :attr:`Token.is_usable`: an access token that may be served."""
        return self.filter(status__in=USABLE_STATUSES, access_token__isnull=False)

    def holding_credentials(self) -> TokenQuerySet:
        """The rows of :attr:`Token.holds_credentials`: something to revoke or to drop."""
        return self.exclude(access_token__isnull=True, refresh_token__isnull=True)


class Token(models.Model):
    """The grant obtained for one owner of a connection (no owner: a shared connection)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="tokens")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="oauthconn_tokens",
    )
    access_token = EncryptedTextField()
    refresh_token = EncryptedTextField()
    id_token = EncryptedTextField()
    token_type = models.CharField(max_length=40, blank=True, default="Bearer")
    expires_at = models.DateTimeField(null=True, blank=True)
    #: the access token's lifetime as the provider gave it (expires_in, clamped), so the
    #: refresh leeway can be kept to a share of it (see needs_refresh)
    lifetime = models.PositiveIntegerField(
        null=True, blank=True, help_text=_("Seconds the provider said the access token lives.")
    )
    refresh_expires_at = models.DateTimeField(null=True, blank=True)
    scope = models.TextField(_("granted scopes"), blank=True)
    subject = models.CharField(max_length=255, blank=True)
    claims = models.JSONField(
        default=dict, blank=True, help_text=_("Display claims (name, email).")
    )
    status = models.CharField(
        max_length=20, choices=TokenStatus.choices, default=TokenStatus.ACTIVE
    )
    authorized_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    authorized_at = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_code = models.CharField(max_length=64, blank=True)
    failure_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text=_("No refresh before this (backoff, Retry-After).")
    )
    #: SQLite only: a worker is renewing this row until then (flows.common.claim_lease);
    #: PostgreSQL uses a row lock and leaves it empty
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text=_("Another worker is renewing this token until then.")
    )
    revocation_pending = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TokenQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "owner"], name="oauthconn_token_one_per_owner"
            ),
            models.UniqueConstraint(
                fields=["connection"],
                condition=Q(owner__isnull=True),
                name="oauthconn_token_one_shared",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "expires_at"]),
            # With the one above, each arm of the due-token query (oauthconn.flows.proactive)
            # has an index, so PostgreSQL ORs three index scans instead of reading the table.
            models.Index(
                fields=["refresh_expires_at"],
                condition=Q(refresh_token__isnull=False),
                name="oauthconn_token_refresh_ends",
            ),
            models.Index(
                Coalesce("refreshed_at", "authorized_at"),
                condition=Q(refresh_token__isnull=False),
                name="oauthconn_token_last_used",
            ),
        ]

    def __str__(self) -> str:
        owner = f" for {self.owner}" if self.owner_id else ""
        return f"{self.connection}{owner}"

    # The one place a grant's state is judged from its row; flows and edges ask these.

    @property
    def is_connected(self) -> bool:
        """An access token was obtained and not disconnected (it may need reauthorization)."""
        return self.access_token is not None and self.status != TokenStatus.REVOKED

    @property
    def is_usable(self) -> bool:
        """The access token may be served: active, or failing while still valid."""
        return self.access_token is not None and self.status in USABLE_STATUSES

    @property
    def never_fetched(self) -> bool:
        """No access token yet and nothing that forbids fetching one (client credentials)."""
        return self.access_token is None and self.status not in (
            TokenStatus.NEEDS_REAUTH,
            TokenStatus.REVOKED,
        )

    @property
    def holds_credentials(self) -> bool:
        """An access or refresh token is stored: revoke it before deleting, drop it on R5."""
        return self.access_token is not None or self.refresh_token is not None

    def expires_within(self, seconds: float, now: datetime | None = None) -> bool:
        """True when the access token is (about to be) expired; unknown expiry counts as valid."""
        if self.expires_at is None:
            return False
        now = now or timezone.now()
        return self.expires_at - timedelta(seconds=seconds) <= now

    def needs_refresh(self, leeway: float | None = None, now: datetime | None = None) -> bool:
        """The one rule for "renew before use": the access token expires within the leeway.

        ``leeway`` defaults to ``REFRESH_LEEWAY``; the proactive refresh passes its window.
        Whatever is asked, it never exceeds ``LEEWAY_SHARE`` of the lifetime the provider
        gave: otherwise a token that lives less than the leeway is due the moment it
        arrives, and every caller would refresh it again (a 5 s token with a 60 s leeway).
        """
        if leeway is None:
            leeway = oauthconn_settings.REFRESH_LEEWAY
        if self.lifetime:
            leeway = min(leeway, self.lifetime * LEEWAY_SHARE)
        return self.expires_within(leeway, now)

    def clear_credentials(self) -> None:
        """Forget every token value of this grant (the caller sets the status and saves)."""
        self.access_token = None
        self.refresh_token = None
        self.id_token = None
        self.expires_at = None
        self.refresh_expires_at = None
        self.next_attempt_at = None

    @property
    def granted_scopes(self) -> list[str]:
        return self.scope.split()

    def require_access_token(self) -> Sealed:
        """The access token, for a grant that must have one; ``NotConnected`` when it has none
        (disconnected or never authorized). Callers reveal it where they send it."""
        if self.access_token is None:
            raise NotConnected()
        return self.access_token

    def has_scope(self, scope: str) -> bool:
        return scope in self.granted_scopes


class PendingAuthorizationQuerySet(models.QuerySet):
    def expired(self, now: datetime | None = None) -> PendingAuthorizationQuerySet:
        return self.filter(expires_at__lte=now or timezone.now())


class PendingAuthorization(models.Model):
    """One started authorization attempt, keyed by a hash of its ``state`` (R9, R16).

    The ``state`` itself is never stored; the verifier and nonce are encrypted. The attempt is
    bound to the browser session that started it (``browser_hash``) and to the user.
    """

    state_hash = models.CharField(max_length=64, unique=True)
    browser_hash = models.CharField(max_length=64, db_index=True)
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE, related_name="+"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    code_verifier = EncryptedTextField()
    nonce = EncryptedTextField()
    redirect_uri = models.CharField(max_length=URL_LENGTH)
    return_to = models.CharField(max_length=URL_LENGTH, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    #: set (and the verifier and nonce dropped) when its callback arrives; kept until it
    #: expires so a replay (back button, reload) gets "already used", not "unknown"
    consumed_at = models.DateTimeField(null=True, blank=True)

    objects = PendingAuthorizationQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Authorization of {self.connection} started {self.created_at:%Y-%m-%d %H:%M}"

    @staticmethod
    def hash(value: str) -> str:
        return hashlib.sha256(value.encode()).hexdigest()


class PendingSwitch(models.Model):
    """A reauthorization by another account, waiting for the person to confirm it (defect 7b).

    The new grant's token response sits here encrypted (never in the session or a URL), bound
    to the browser session and user of the attempt, valid for ``STATE_LIFETIME`` seconds and
    taken once; the URL names it by a random key whose hash is stored. The display claims
    are kept to name both accounts on the confirmation page.
    """

    key_hash = models.CharField(max_length=64, unique=True)
    browser_hash = models.CharField(max_length=64)
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE, related_name="+"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    #: the token response as JSON, encrypted; dropped when the switch is taken
    tokens = EncryptedTextField()
    old_subject = models.CharField(max_length=255)
    old_claims = models.JSONField(default=dict, blank=True)
    subject = models.CharField(max_length=255)
    claims = models.JSONField(default=dict, blank=True)
    return_to = models.CharField(max_length=URL_LENGTH, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    #: set when confirmed or declined; kept until it expires so a replay is told "already used"
    consumed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Account switch of {self.connection} started {self.created_at:%Y-%m-%d %H:%M}"


class PendingRevocation(models.Model):
    """A token whose revocation failed for a passing reason (RFC 7009 §2.2.1: on 503 the
    client assumes the token still exists and retries later). The grant is already wiped
    locally; ``oauthconn_revoke_pending`` retries, and only at the endpoint it was sent to."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    token = models.ForeignKey(Token, null=True, on_delete=models.SET_NULL, related_name="+")
    value = EncryptedTextField()
    token_type_hint = models.CharField(max_length=20)
    endpoint = models.CharField(max_length=URL_LENGTH)
    attempts = models.PositiveIntegerField(default=1)
    next_attempt_at = models.DateTimeField(db_index=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Revocation of a {self.token_type_hint} of {self.connection}"


class EventKind(models.TextChoices):
    AUTHORIZED = "authorized", _("Authorized")
    REFRESHED = "refreshed", _("Refreshed")
    REFRESH_FAILED = "refresh_failed", _("Refresh failed")
    NEEDS_REAUTH = "needs_reauth", _("Needs reauthorization")
    RECOVERED = "recovered", _("Recovered")
    REVOKED = "revoked", _("Revoked")
    AUTHORIZATION_FAILED = "authorization_failed", _("Authorization failed")
    KEYS_ROTATED = "keys_rotated", _("Encryption keys rotated")


class Event(models.Model):
    """An audit trail entry. Never holds a secret: messages are built from fixed sentences."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="events")
    token = models.ForeignKey(
        Token, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    kind = models.CharField(max_length=32, choices=EventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # The health overview counts events per kind over a time range (oauthconn.flows.health).
        indexes = [models.Index(fields=["kind", "created_at"], name="oauthconn_event_kind_time")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {self.connection}"

    @property
    def actor_label(self) -> str:
        """Who caused the event, for people: the user, else the job that recorded itself in
        ``data["source"]`` (e.g. ``oauthconn_refresh``), else "automatic" for a renewal that
        site code triggered by using the token; "" when nobody is known."""
        if self.actor_id is not None:
            return str(self.actor)
        source = self.data.get("source") if isinstance(self.data, dict) else None
        if source:
            return str(source)
        return "automatic" if self.kind in RENEWAL_EVENTS else ""


#: The events a renewal records: made by whoever used the token, when no user asked for them.
RENEWAL_EVENTS = frozenset(
    {
        EventKind.REFRESHED,
        EventKind.REFRESH_FAILED,
        EventKind.NEEDS_REAUTH,
        EventKind.RECOVERED,
    }
)


class Notification(models.Model):
    """The outbox: one message about a state change to one destination (an e-mail or a
    webhook), written in the transaction that changed the state and delivered afterwards by
    ``oauthconn_refresh`` / the Celery task, with retries (see docs/operations.md).

    ``payload`` holds what the message says, never a secret: kind, connection slug and name,
    owner id, status, message, time, an admin link.
    """

    class Channel(models.TextChoices):
        EMAIL = "email", _("E-mail")
        WEBHOOK = "webhook", _("Webhook")

    event = models.ForeignKey(
        Event, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    token = models.ForeignKey(
        Token, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: The grant's state this tells about (needs_reauth, revoked, failing): at most one
    #: notification per destination each time a grant enters a state.
    state = models.CharField(max_length=20)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    #: The webhook URL, the e-mail address, or "admins" (settings.ADMINS via mail_admins).
    destination = models.CharField(max_length=URL_LENGTH)
    payload = models.JSONField(default=dict)
    attempts = models.PositiveIntegerField(default=0)
    #: None once delivered or given up.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(delivered_at__isnull=True),
                name="oauthconn_notification_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.state} to {self.channel} ({self.destination})"

"""Provider, Connection, Token, PendingAuthorization and Event. Models never touch the network."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from oauthconn.conf import oauthconn_settings
from oauthconn.fields import EncryptedTextField

URL_LENGTH = 2000


def url_field(verbose_name: str, **kwargs) -> models.CharField:
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


class TokenQuerySet(models.QuerySet):
    def for_owner(self, owner) -> TokenQuerySet:
        if owner is None:
            return self.filter(owner__isnull=True)
        return self.filter(owner=owner)


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

    @property
    def is_connected(self) -> bool:
        return self.access_token is not None and self.status != TokenStatus.REVOKED

    def expires_within(self, seconds: float, now: datetime | None = None) -> bool:
        """True when the access token is (about to be) expired; unknown expiry counts as valid."""
        if self.expires_at is None:
            return False
        now = now or timezone.now()
        return self.expires_at - timedelta(seconds=seconds) <= now

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

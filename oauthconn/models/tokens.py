"""Grants: the tokens one owner holds for a connection, and their health."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from oauthconn.base_url import grant_fields, resolve
from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import NotConnected, OAuthConnError
from oauthconn.fields import EncryptedTextField
from oauthconn.models.connections import Connection
from oauthconn.models.owners import OWNER_KEY_LENGTH, check_owner, describe_owner, owner_q

if TYPE_CHECKING:
    from oauthconn.crypto import Sealed
    from oauthconn.types import Owner


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
        """The rows of exactly this owner (None: the shared grant), whatever its kind."""
        return self.filter(owner_q(owner))

    def grant_of(self, connection: Connection, owner: Owner) -> TokenQuerySet:
        """The row of ``owner``'s grant of ``connection``; ConfigurationError when ``owner``
        is not the kind of owner the connection's grants have (models.owners.check_owner)."""
        check_owner(connection, owner)
        return self.filter(connection=connection).for_owner(owner)

    def owned_as(self, row: Any) -> TokenQuerySet:
        """The rows of the owner another row names (an attempt, a held switch, an event)."""
        return self.filter(owner=row.owner_id, owner_key=row.owner_key)

    def usable(self) -> TokenQuerySet:
        """The rows of :attr:`Token.is_usable`: an access token that may be served."""
        return self.filter(status__in=USABLE_STATUSES, access_token__isnull=False)

    def holding_credentials(self) -> TokenQuerySet:
        """The rows of :attr:`Token.holds_credentials`: something to revoke or to drop."""
        return self.exclude(access_token__isnull=True, refresh_token__isnull=True)

    def holding_grants(self) -> TokenQuerySet:
        """The rows that count as a grant for the "not connected" status: an access token, or
        a failing, needs-reauthorization or revoked state (``Connection.held_grants`` counts
        them, by the triggers of migration 0019)."""
        held = (TokenStatus.FAILING, TokenStatus.NEEDS_REAUTH, TokenStatus.REVOKED)
        return self.filter(Q(access_token__isnull=False) | Q(status__in=held))


class Token(models.Model):
    """The grant obtained for one owner of a connection (no owner: a shared connection)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="tokens")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="oauthconn_tokens",
        db_index=False,  # ("owner", "connection") below leads with it (migration 0023)
    )
    #: an owner other than a user (OAUTHCONN["OWNER_MODEL"]), see oauthconn.models.owners
    owner_key = models.CharField(max_length=OWNER_KEY_LENGTH, blank=True, default="", db_default="")
    access_token = EncryptedTextField()
    refresh_token = EncryptedTextField()
    id_token = EncryptedTextField()
    #: DPoP (RFC 9449): the grant's private key (alg + JWK, oauthconn.oauth.dpop.DPoPKey),
    #: kept as long as the tokens bound to it; a new key means authorizing again
    dpop_key = EncryptedTextField()
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
    #: the values of the API base URL's per-grant fields ({token:...}, {ask:...}), by name
    #: (oauthconn.base_url); read by the one-query lookup with the rest of the row. The
    #: database default keeps raw INSERTs that predate the column working (bulk seeding).
    base_values = models.JSONField(
        default=dict,
        db_default={},
        blank=True,
        help_text=_("This grant's values of the API base URL fields."),
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
                condition=Q(owner__isnull=True, owner_key=""),
                name="oauthconn_token_one_shared",
            ),
            models.UniqueConstraint(
                fields=["connection", "owner_key"],
                condition=~Q(owner_key=""),
                name="oauthconn_token_one_per_keyed_owner",
            ),
            models.CheckConstraint(
                condition=Q(owner__isnull=True) | Q(owner_key=""),
                name="oauthconn_token_one_owner",
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
            # "Expiring" and the health command ask for grants without a refresh token whose
            # access token ends soon: (status, expires_at) matches nearly every grant there.
            models.Index(
                fields=["expires_at"],
                condition=Q(refresh_token__isnull=True),
                name="oauthconn_token_access_ends",
            ),
            # A user's grants by connection, read whole by the API's "not connected" filter.
            models.Index(fields=["owner", "connection"], name="oauthconn_token_owner_conn"),
        ]

    def __str__(self) -> str:
        owner = f" for {describe_owner(self)}" if self.owner_id or self.owner_key else ""
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
        self.dpop_key = None
        self.expires_at = None
        self.refresh_expires_at = None
        self.next_attempt_at = None

    @property
    def api_base_url(self) -> str:
        """The API base URL this grant's values resolve to, for display; "" when they do not."""
        template = self.connection.api_base_url
        try:
            return resolve(template, self.base_values) if grant_fields(template) else template
        except OAuthConnError:
            return ""

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

    @property
    def requestable_scopes(self) -> list[str]:
        """The scopes of the connection (its own and its optional ones) this grant lacks:
        what "Request more scopes" offers (docs/scopes.md)."""
        connection = self.connection
        allowed = dict.fromkeys(connection.scope_list + connection.optional_scope_list)
        held = set(self.granted_scopes)
        return [scope for scope in allowed if scope not in held]

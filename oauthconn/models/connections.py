"""Connections: what an admin configures at a provider, used by site code by slug (no network
here)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from oauthconn.base_url import GrantField, asked_fields
from oauthconn.conf import oauthconn_settings
from oauthconn.fields import EncryptedTextField
from oauthconn.models.providers import URL_LENGTH, Provider, url_field

#: How many extra "refresh and retry" status codes a connection may list.
MAX_REFRESH_STATUSES = 10


def validate_refresh_statuses(value: object) -> None:
    """``refresh_on_status``: a list of distinct HTTP error codes, 400-599, without 401
    (which always refreshes), as ints."""
    if not isinstance(value, list) or not all(
        isinstance(code, int) and not isinstance(code, bool) for code in value
    ):
        raise ValidationError(
            "Enter a list of HTTP status codes, e.g. [403].", code="invalid_statuses"
        )
    wrong = [code for code in value if not 400 <= code <= 599]
    if wrong:
        raise ValidationError(
            "Only error statuses (400-599) can mean an expired token, not %(codes)s.",
            code="invalid_statuses",
            params={"codes": ", ".join(map(str, wrong))},
        )
    if 401 in value:
        raise ValidationError(
            "401 always refreshes the token and retries: list only the other statuses.",
            code="invalid_statuses",
        )
    if len(set(value)) != len(value) or len(value) > MAX_REFRESH_STATUSES:
        raise ValidationError(
            "List each status once, at most %(max)d of them.",
            code="invalid_statuses",
            params={"max": MAX_REFRESH_STATUSES},
        )


class GrantType(models.TextChoices):
    AUTHORIZATION_CODE = "authorization_code", _("Authorization code")
    AUTHORIZATION_CODE_PKCE = "authorization_code_pkce", _("Authorization code with PKCE")
    CLIENT_CREDENTIALS = "client_credentials", _("Client credentials")


class ClientAuthMethod(models.TextChoices):
    CLIENT_SECRET_BASIC = "client_secret_basic", _("HTTP Basic (client_secret_basic)")
    CLIENT_SECRET_POST = "client_secret_post", _("In the request body (client_secret_post)")
    NONE = "none", _("None: public client (PKCE required)")
    PRIVATE_KEY_JWT = "private_key_jwt", _("Signed JWT (private_key_jwt)")


#: The non-per-user connections that have no shared grant, or are per owner: the API's "not
#: connected" filter asks exactly this, so that PostgreSQL answers it from the partial index
#: of the same condition (``oauthconn_connection_unshared``, migration 0021).
UNSHARED = Q(per_user=False) & (Q(per_owner=True) | Q(shared_grants=0))


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
    #: incremental authorization (docs/scopes.md, R66): the only scopes beyond ``scopes`` that
    #: site code, a user or an admin may ask to add to a grant later
    optional_scopes = models.TextField(
        blank=True,
        default="",
        db_default="",  # rows written by raw SQL (the benchmarks' seeding) need no value
        help_text=_(
            "Scopes that may be added to a grant later (Request more scopes, "
            "require_scopes()), space separated."
        ),
    )
    extra_authorize_params = models.JSONField(default=dict, blank=True)
    extra_token_params = models.JSONField(default=dict, blank=True)
    api_base_url = url_field(
        _("API base URL"),
        help_text=_(
            "Tokens are sent only to this origin. Per-grant fields: {token:name} from the "
            "token response, {ask:name} typed when connecting."
        ),
    )
    per_user = models.BooleanField(
        _("per-user"), default=False, help_text=_("Each user connects their own account.")
    )
    use_dpop = models.BooleanField(
        _("DPoP-bound tokens"),
        default=False,
        # Also in the database: rows written by raw SQL (bulk seeding) need no value for it.
        db_default=False,
        help_text=_(
            "RFC 9449: tokens are bound to a key pair kept for each grant, so a stolen token "
            "is useless without it."
        ),
    )
    #: grants held by instances of OAUTHCONN["OWNER_MODEL"] (teams, ...): see models.owners
    per_owner = models.BooleanField(
        _("per-owner"),
        default=False,
        db_default=False,  # rows inserted without it (raw SQL, COPY) stay shared or per-user
        help_text=_("Each owner (team, organization: OAUTHCONN['OWNER_MODEL']) connects its own."),
    )
    token_lifetime = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Seconds assumed when the provider does not say (no expires_in)."),
    )
    test_path = models.CharField(
        max_length=URL_LENGTH, blank=True, help_text=_("Path under the API base URL for 'Test'.")
    )
    # Resilient calls (docs/calls.md): opt-in retries of idempotent requests on 429 and 503,
    # bounded so that no worker waits long, and the statuses that mean "expired token" here.
    # Database defaults too: rows written outside the ORM (bulk seeding, an older release
    # still running during a deploy) get the same values.
    retry_rate_limited = models.BooleanField(
        _("retry rate-limited calls"),
        default=False,
        db_default=False,
        help_text=_(
            "Retry idempotent requests (GET, HEAD, OPTIONS, PUT, DELETE) answered 429 or 503, "
            "waiting as Retry-After says or with a jittered backoff."
        ),
    )
    max_attempts = models.PositiveSmallIntegerField(
        _("max attempts"),
        default=3,
        db_default=3,
        validators=[MinValueValidator(1), MaxValueValidator(10)],
        help_text=_("Requests sent per call at most, the first one included (1-10)."),
    )
    max_retry_wait = models.PositiveSmallIntegerField(
        _("max retry wait"),
        default=30,
        db_default=30,
        validators=[MinValueValidator(1), MaxValueValidator(300)],
        help_text=_(
            "Seconds (1-300). A Retry-After longer than this ends the call at once with "
            "RateLimited instead of holding the worker."
        ),
    )
    refresh_on_status = models.JSONField(
        _("refresh on status"),
        default=list,
        db_default=models.Value([], models.JSONField()),
        blank=True,
        validators=[validate_refresh_statuses],
        help_text=_(
            "HTTP statuses besides 401 with which this API says the token expired (e.g. 403): "
            "the token is refreshed once and the request retried once."
        ),
    )
    use_par = models.BooleanField(
        _("push authorization requests (PAR)"),
        default=False,
        db_default=False,
        help_text=_(
            "RFC 9126: send the authorization request to the provider directly; the browser "
            "carries only a reference. Always on when the provider requires it."
        ),
    )
    resource = url_field(
        _("resource indicator"),
        db_default="",
        help_text=_(
            "RFC 8707: the API the tokens are for, sent as 'resource' in the authorization "
            "and token requests. Set when connecting by API URL."
        ),
    )
    registered_automatically = models.BooleanField(
        _("registered automatically"),
        default=False,
        db_default=False,
        help_text=_("RFC 7591: the client was registered by oauthconn, not typed in."),
    )
    registration_access_token = EncryptedTextField(_("registration access token"))
    registration_client_uri = url_field(
        _("registration client URI"),
        db_default="",
        help_text=_("RFC 7592: where the registration is managed."),
    )
    metadata = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    #: How many of its grants (any owner's) hold something: an access token, or a failing,
    #: needs-reauthorization or revoked state. Kept by database triggers on the token table
    #: (migration 0019), never by Python: ``save()`` leaves it out. The "not connected" filter
    #: reads it (``held_grants = 0``) instead of proving, row by row, that no grant exists.
    held_grants = models.IntegerField(default=0, db_default=0, editable=False, serialize=False)
    #: How many shared grants (token rows without an owner) it has: 0 or 1. Kept by database
    #: triggers like ``held_grants`` (migration 0021); the API's "not connected" filter reads
    #: it for the shared connections.
    shared_grants = models.IntegerField(default=0, db_default=0, editable=False, serialize=False)

    #: Columns the database keeps: an instance's copy may be stale, so saves never write them.
    DATABASE_KEPT = ("held_grants", "shared_grants")

    class Meta:
        ordering = ["name"]
        # The admin's and the API's lists are ordered by name (migration 0005).
        indexes = [
            models.Index(fields=["name"], name="oauthconn_connection_name"),
            # The "not connected" filter's count and first page (migration 0019).
            models.Index(
                fields=["name"],
                condition=Q(held_grants=0),
                name="oauthconn_connection_unheld",
            ),
            # The API's "not connected" filter: the non-per-user connections without a
            # shared grant, and the per-user ones to hold against the caller's (migration 0021).
            models.Index(
                fields=["name"],
                condition=UNSHARED,
                name="oauthconn_connection_unshared",
            ),
            models.Index(
                fields=["id"], condition=Q(per_user=True), name="oauthconn_connection_per_user"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(per_user=True, per_owner=True),
                name="oauthconn_connection_one_owner_kind",
                violation_error_message=_("A connection is per-user or per-owner, not both."),
            )
        ]
        permissions = [
            ("authorize_connection", "Can authorize the connection (bind an account)"),
            ("refresh_connection", "Can refresh and test the connection"),
            ("disconnect_connection", "Can disconnect the connection"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        # An UPDATE of every column would write back this instance's copy of the kept
        # columns, stale once a grant changed since it was read: name the columns instead
        # (the loaded ones, as Django does for a deferred instance).
        saving_every_column = kwargs.get("update_fields") is None and not kwargs.get("force_insert")
        if saving_every_column and not (args or self._state.adding):
            skipped = {*self.DATABASE_KEPT, *self.get_deferred_fields()}  # names = attnames
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.attname not in skipped
            ]
        super().save(*args, **kwargs)

    @property
    def is_shared(self) -> bool:
        """One grant for the whole site (no owner), administered by staff."""
        return not (self.per_user or self.per_owner)

    @property
    def uses_pkce(self) -> bool:
        return self.grant_type == GrantType.AUTHORIZATION_CODE_PKCE

    @property
    def uses_browser(self) -> bool:
        return self.grant_type != GrantType.CLIENT_CREDENTIALS

    @property
    def asked_fields(self) -> list[GrantField]:
        """The API base URL's ``{ask:...}`` fields, typed by whoever connects."""
        return asked_fields(self.api_base_url)

    @property
    def pushes_requests(self) -> bool:
        """Whether authorization starts with a pushed request (RFC 9126): chosen, or required."""
        return self.use_par or self.provider.requires_par

    @property
    def token_params(self) -> dict[str, str]:
        """Extra token request parameters, with the RFC 8707 ``resource`` when one is set:
        the token is then issued for that API only (§2.2)."""
        params = dict(self.extra_token_params or {})
        if self.resource:
            params["resource"] = self.resource
        return params

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()

    @property
    def optional_scope_list(self) -> list[str]:
        return self.optional_scopes.split()

    @property
    def scope_string(self) -> str:
        """The scopes as the provider wants them joined (RFC 6749 §3.3 says a space)."""
        return self.provider.scope_separator.join(self.scope_list)

    @property
    def redirect_uri(self) -> str:
        """The one redirect URI of this connection, built from configuration (R12)."""
        base = oauthconn_settings.REDIRECT_BASE_URL.rstrip("/")
        return base + reverse("oauthconn:callback", args=[self.slug])

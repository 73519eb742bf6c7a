"""Providers and connections: what an admin configures (no network here)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from oauthconn.conf import oauthconn_settings
from oauthconn.fields import EncryptedTextField

if TYPE_CHECKING:
    from django.db.models.expressions import Combinable
    from django_stubs_ext import StrOrPromise


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
    #: incremental authorization (docs/scopes.md, R66): the only scopes beyond ``scopes`` that
    #: site code, a user or an admin may ask to add to a grant later
    optional_scopes = models.TextField(
        blank=True,
        help_text=_(
            "Scopes that may be added to a grant later (Request more scopes, "
            "require_scopes()), space separated."
        ),
    )
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

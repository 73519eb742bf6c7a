"""Providers: the authorization servers connections use (no network here)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models
from django.utils.translation import gettext_lazy as _

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
        "pushed_authorization_request_endpoint",
        "registration_endpoint",
    )
    #: What an admin or API client may set.
    SETTINGS_FIELDS = (
        "name",
        "slug",
        "preset",
        *URL_FIELDS,
        "scope_separator",
        "sends_issuer",
        "requires_par",
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
    # db_default on every column added by 0011: rows inserted by code that predates it (a
    # rolling deploy's old processes, raw-SQL seeding) still get a value.
    pushed_authorization_request_endpoint = url_field(
        _("pushed authorization request endpoint"),
        db_default="",
        help_text=_("RFC 9126 (PAR): where authorization requests are pushed, when offered."),
    )
    registration_endpoint = url_field(
        _("registration endpoint"),
        db_default="",
        help_text=_("RFC 7591: where clients register themselves, when offered."),
    )
    requires_par = models.BooleanField(
        _("requires pushed authorization requests"),
        default=False,
        db_default=False,
        help_text=_("RFC 9126 §5: the provider accepts authorization requests only pushed."),
    )
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

    @property
    def dpop_signing_algs(self) -> list[str]:
        """``dpop_signing_alg_values_supported`` of the discovery snapshot (RFC 9449 §5.1):
        non-empty exactly when the provider says it accepts DPoP proofs."""
        algs = self.metadata.get("dpop_signing_alg_values_supported") if self.metadata else None
        if not isinstance(algs, list):
            return []
        return [alg for alg in algs if isinstance(alg, str) and alg]

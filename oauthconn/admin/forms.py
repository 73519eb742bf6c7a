"""Admin forms for providers and connections, and the field checks the wizard shares.

Secrets are write-only: an empty field keeps the stored value. The configuration rules (URLs,
SECURITY R1; extra parameters, R13; grant and client authentication, R7) live in
:mod:`oauthconn.flows.validation`; these forms show its errors under their fields.
Security-relevant edits follow R5.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from django import forms
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from oauthconn.exceptions import ConfigurationError, ScopeNotAllowed
from oauthconn.flows.configuration import (
    SECURITY_RELEVANT_PROVIDER_FIELDS,
    secret_holders,
    security_relevant,
)
from oauthconn.flows.validation import needs_secret, validate_configuration, validate_provider
from oauthconn.models import ClientAuthMethod, Connection, Provider
from oauthconn.models.owners import owner_model
from oauthconn.oauth.scopes import parse_scopes

PROVIDER_URL_FIELDS = Provider.URL_FIELDS

#: One help line per client authentication method (RFC 6749 §2.3, RFC 7523 §2.2); the page
#: shows the chosen method's line only (admin.js follows the select).
AUTH_METHOD_HELP: dict[str, str] = {
    ClientAuthMethod.CLIENT_SECRET_BASIC: "The client id and secret go in an HTTP Basic "
    "Authorization header of each token request; what most providers expect.",
    ClientAuthMethod.CLIENT_SECRET_POST: "The client id and secret go in the body of each "
    "token request, for providers that do not take HTTP Basic.",
    ClientAuthMethod.NONE: "A public client: no secret is sent; the code is protected by PKCE "
    "alone, so use the authorization code with PKCE grant.",
    ClientAuthMethod.PRIVATE_KEY_JWT: "Signed JWT: no secret; a key pair is generated when the "
    "connection is saved, and the provider checks the signature with the public key served at "
    "the JWKS URL, which you register there.",
}


def chosen_value(form: forms.BaseForm, name: str) -> Any:
    """The value a field shows, read without building (and caching) its BoundField, so its
    label and help may still change."""
    if form.is_bound:
        return form.data.get(form.add_prefix(name))
    return form.get_initial_for_field(form.fields[name], name)


def choice_field(form: forms.BaseForm, name: str) -> forms.ChoiceField:
    """``form.fields[name]``, a choice field whose choices a form changes per request."""
    field = form.fields[name]
    if not isinstance(field, forms.ChoiceField):  # a programming error, not user input
        raise TypeError(f"{type(form).__name__}.{name} is not a choice field.")
    return field


def auth_method_help(selected: str | None, methods: Sequence[str] | None = None) -> SafeString:
    """The help lines of ``methods`` (all by default), every one but ``selected`` hidden."""
    methods = methods or list(AUTH_METHOD_HELP)
    if selected not in methods:  # a select with nothing chosen shows its first option
        selected = methods[0]
    hidden = mark_safe(" hidden")  # a fixed attribute, no data in it
    lines = format_html_join(
        "",
        '<span class="oauthconn-auth-help" data-auth-help="{}"{}>{}</span>',
        ((m, "" if m == selected else hidden, AUTH_METHOD_HELP[m]) for m in methods),
    )
    return format_html("{}", lines)


def add_configuration_errors(
    form: forms.BaseForm, err: ConfigurationError, rename: Mapping[str, str] | None = None
) -> None:
    """Show each problem of :mod:`oauthconn.flows.validation` under its field (``rename``
    maps a flow's field name to this form's), or above the form when it has no such field."""
    errors = err.details.get("errors") or {err.details.get("field"): str(err)}
    for name, message in cast(dict, errors).items():
        name = (rename or {}).get(name, name)
        form.add_error(name if name in form.fields else None, message)


#: RFC 6749 §3.3 says space; a few providers (Slack's v1 scopes, ...) want commas.
SCOPE_SEPARATORS = [(" ", "Space (RFC 6749)"), (",", "Comma")]


class ProviderForm(forms.ModelForm):
    """Providers are shared by connections: moving the endpoints of one in use is refused."""

    # A choice, not a text box: a text field strips the default " " to nothing and then
    # refuses to save the provider ("This field is required"), and a space is invisible.
    scope_separator = forms.ChoiceField(choices=SCOPE_SEPARATORS, initial=" ")

    class Meta:
        model = Provider
        fields = Provider.SETTINGS_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = self.instance.scope_separator
        if "scope_separator" in self.fields and current not in dict(SCOPE_SEPARATORS):
            # Set elsewhere (the API accepts any short separator): keep it choosable.
            field = choice_field(self, "scope_separator")
            field.choices = [*SCOPE_SEPARATORS, (current, f"{current!r} (current)")]

    def clean(self) -> dict[str, Any]:
        super().clean()  # a ModelForm's clean() fills and returns self.cleaned_data
        cleaned = self.cleaned_data
        try:
            validate_provider(cleaned, instance=self.instance)
        except ConfigurationError as err:
            add_configuration_errors(self, err)
        self._refuse_moving_secrets()
        return cleaned

    def _refuse_moving_secrets(self) -> None:
        moved = sorted(SECURITY_RELEVANT_PROVIDER_FIELDS & set(self.changed_data))
        if not self.instance.pk or not moved:
            return
        holders = [c.name for c in secret_holders(self.instance)]
        if holders:
            raise forms.ValidationError(
                "These connections hold a client secret or tokens for this provider: %(names)s. "
                "Changing %(fields)s would send them to another server. Create a new provider "
                "and choose it on each connection instead (you will re-enter the secret there).",
                params={"names": ", ".join(holders), "fields": ", ".join(moved)},
            )


class StatusCodesField(forms.Field):
    """A list of HTTP status codes typed as "403, 400" (the model validates the values)."""

    widget = forms.TextInput

    def __init__(self, *, encoder: Any = None, decoder: Any = None, **kwargs: Any) -> None:
        # The model's JSONField offers its JSON encoder and decoder: a typed list needs none.
        kwargs.pop("max_length", None)
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return ", ".join(str(code) for code in value)
        return value

    def to_python(self, value: Any) -> list[int]:
        text = str(value or "")
        parts = [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]
        if not all(part.isascii() and part.isdigit() for part in parts):
            raise forms.ValidationError(
                "Enter status codes separated by commas, e.g. 403, 400.", code="invalid"
            )
        return [int(part) for part in parts]

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(data) != (initial or [])
        except forms.ValidationError:
            return True


def offers_per_owner(connection: Connection | None) -> bool:
    """Whether the change form has the per-owner checkbox: on a site with an OWNER_MODEL, or
    for a connection already per-owner. A site without teams is not offered them."""
    return owner_model() is not None or (connection is not None and connection.per_owner)


class ConnectionForm(forms.ModelForm):
    """The change form. A security-relevant change asks for the client secret again (R5)."""

    new_client_secret = forms.CharField(
        label="Client secret",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only. Leave empty to keep the current secret.",
    )

    class Meta:
        model = Connection
        fields = [
            "name",
            "slug",
            "per_user",
            "per_owner",
            "provider",
            "grant_type",
            "client_id",
            "new_client_secret",
            "client_auth_method",
            "scopes",
            "optional_scopes",
            "extra_authorize_params",
            "extra_token_params",
            "api_base_url",
            "test_path",
            "token_lifetime",
            "retry_rate_limited",
            "max_attempts",
            "max_retry_wait",
            "refresh_on_status",
            "use_dpop",
            "use_par",
            "resource",
        ]
        field_classes = {"refresh_on_status": StatusCodesField}

    def clean_optional_scopes(self) -> str:
        """Scope tokens (RFC 6749 §3.3), one space apart, as ``Connection.scopes``."""
        try:
            return " ".join(parse_scopes([self.cleaned_data.get("optional_scopes", "")]))
        except ScopeNotAllowed as err:
            raise forms.ValidationError(str(err)) from err

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.r5_fields: list[str] = []
        if self.instance.pk and self.instance.client_secret is not None:
            self.fields["new_client_secret"].help_text = (
                "Set. Write-only: leave empty to keep it. Changing the provider, client id, "
                "client authentication or API base URL requires entering it again."
            )
        if "client_auth_method" in self.fields:  # absent for users who may only view
            selected = chosen_value(self, "client_auth_method")
            self.fields["client_auth_method"].help_text = auth_method_help(selected)
        if not offers_per_owner(self.instance):
            self.fields.pop("per_owner", None)

    def clean(self) -> dict[str, Any]:
        super().clean()  # a ModelForm's clean() fills and returns self.cleaned_data
        cleaned = self.cleaned_data
        typed = bool(cleaned.get("new_client_secret"))
        try:
            validate_configuration(
                cleaned,
                has_secret=typed or self.instance.client_secret is not None,
                provider=cleaned.get("provider"),
            )
        except ConfigurationError as err:
            add_configuration_errors(self, err, rename={"client_secret": "new_client_secret"})
        self._require_secret()
        return cleaned

    def _require_secret(self) -> None:
        method = self.cleaned_data.get("client_auth_method")
        typed = self.cleaned_data.get("new_client_secret")
        # No secret at all is validate_configuration's to say; this is R5's re-entry.
        if not needs_secret(method) or typed or self.instance.client_secret is None:
            return
        if self.instance.pk:
            self.r5_fields = security_relevant(self.changed_data)
        if self.r5_fields:
            self.add_error(
                "new_client_secret",
                "You changed {}: re-enter the client secret, so that it is never sent to a "
                "server it was not typed for.".format(", ".join(self.r5_fields)),
            )

    def save(self, commit=True):
        if self.instance.pk:
            self.r5_fields = security_relevant(self.changed_data)
        secret = self.cleaned_data.get("new_client_secret")
        if secret:
            self.instance.client_secret = secret
        return super().save(commit)


def offer_owner_kind(form: forms.BaseForm) -> None:
    """Offer "per team" (the site's OWNER_MODEL, docs/owners.md) on a site that names one."""
    model = owner_model()
    if model is not None:
        name = model._meta.verbose_name
        field = choice_field(form, "sharing")
        offered = list(cast("Iterable[Any]", field.choices))
        field.choices = [*offered, ("per_owner", f"Per {name}: each {name} connects its own")]

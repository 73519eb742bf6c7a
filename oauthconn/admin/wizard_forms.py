"""The four steps of the "Add connection" wizard: basics, grant type, client, review."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils.text import slugify

from oauthconn.admin.features import offer_par, offer_registration, resource_fields
from oauthconn.admin.forms import (
    PROVIDER_URL_FIELDS,
    add_configuration_errors,
    auth_method_help,
    choice_field,
    chosen_value,
)
from oauthconn.admin.wizard_dpop import add_dpop_field
from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import ConfigurationError, DiscoveryFailed
from oauthconn.flows.configuration import issuer_conflict
from oauthconn.flows.discovery import discover_provider
from oauthconn.flows.validation import validate_configuration
from oauthconn.models import ClientAuthMethod, Connection, GrantType, Provider
from oauthconn.presets import get_preset, preset_choices

SOURCE_CHOICES = [
    ("preset", "A well-known provider (preset)"),
    ("issuer", "Discover from an issuer URL (OpenID Connect or RFC 8414 metadata)"),
    ("resource", "Connect by API URL: the API names its authorization server (RFC 9728)"),
    ("existing", "A provider already set up here"),
    ("custom", "Custom endpoints"),
]
#: Wide inputs for URLs (admin's default text input is too narrow for them).
URL_INPUT = {"class": "vTextField oauthconn-url"}


def url_field(label: str | None = None, *, required: bool = False) -> forms.CharField:
    return forms.CharField(
        label=label, required=required, max_length=2000, widget=forms.TextInput(URL_INPUT)
    )


GRANT_HELP: dict[str, str] = {
    GrantType.AUTHORIZATION_CODE_PKCE: "recommended for all clients, and the only safe choice "
    "for clients that cannot keep a secret (PKCE, RFC 7636).",
    GrantType.AUTHORIZATION_CODE: "for a confidential client when the provider does not "
    "support PKCE.",
    GrantType.CLIENT_CREDENTIALS: "for server-to-server access as the client itself, "
    "without a user (RFC 6749 §4.4).",
}
#: The key types the wizard offers for a signed JWT (``flows.keys.generate_key_pair`` kinds).
KEY_TYPE_CHOICES = [
    ("RSA", "RSA 2048 (signs RS256): accepted by every provider that takes signed JWTs"),
    ("EC", "EC P-256 (signs ES256): smaller and faster, where the provider accepts it"),
]
KEY_TYPE_LABELS = {"RSA": "RSA 2048 (RS256)", "EC": "EC P-256 (ES256)"}
PRIVATE_KEY_JWT = ClientAuthMethod.PRIVATE_KEY_JWT
GRANT_ORDER = (
    GrantType.AUTHORIZATION_CODE_PKCE,
    GrantType.AUTHORIZATION_CODE,
    GrantType.CLIENT_CREDENTIALS,
)


PARAMETER_HELP = "Only for presets that need one: the tenant, domain, subdomain or base URL."


def site_parameter_defaults() -> dict[str, str]:
    """This site's value for each parameterized preset's one parameter (PRESET_PARAMETERS)."""
    configured = oauthconn_settings.PRESET_PARAMETERS or {}
    found = {}
    for key, values in configured.items():
        try:
            name = get_preset(key).parameters[0]
        except (KeyError, IndexError):  # a preset that is gone, or takes no parameter
            continue
        if values.get(name):
            found[key] = str(values[name])
    return found


def parameter_texts() -> dict[str, dict[str, str]]:
    """Label, help and prefill of each parameterized preset's parameter, for admin.js."""
    defaults = site_parameter_defaults()
    texts = {}
    for key, _name in preset_choices():
        preset = get_preset(key)
        if preset.parameters:
            name = preset.parameters[0]
            label, help_text = preset.parameter_text(name)
            value = defaults.get(key) or preset.parameter_defaults.get(name, "")
            texts[key] = {"label": label, "help": help_text, "value": value}
    return texts


def describe_preset_parameter(form: forms.Form) -> None:
    """Name the parameter after the chosen preset (admin.js follows later choices) and hand
    the texts of all presets to the page."""
    texts = parameter_texts()
    field = form.fields["preset_parameter"]
    field.widget.attrs["data-presets"] = json.dumps(texts)
    chosen = texts.get(chosen_value(form, "preset") or "")
    if chosen:
        field.label, field.help_text = chosen["label"], chosen["help"] or PARAMETER_HELP


class BasicsForm(forms.Form):
    """Step 1: name, slug, shared or per-user, and where the provider comes from."""

    name = forms.CharField(max_length=200)
    slug = forms.SlugField(
        max_length=50,
        required=False,
        help_text="Site code calls get_connection(slug). Derived from the name when empty.",
    )
    sharing = forms.ChoiceField(
        label="Who connects",
        choices=[
            ("shared", "Shared: one account, authorized once by an admin, for the whole site"),
            ("per_user", "Per user: each signed-in user connects their own account"),
        ],
        initial="shared",
        widget=forms.RadioSelect,
    )
    source = forms.ChoiceField(
        label="Provider", choices=SOURCE_CHOICES, initial="preset", widget=forms.RadioSelect
    )
    preset = forms.ChoiceField(required=False)
    preset_parameter = forms.CharField(
        required=False,
        max_length=253,
        widget=forms.TextInput(URL_INPUT),
        help_text=PARAMETER_HELP,
    )
    issuer = url_field("Issuer URL")
    resource_url = url_field("API URL")
    existing_provider = forms.ModelChoiceField(Provider.objects.all(), required=False)

    def __init__(self, *args: Any, discovered: dict | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choice_field(self, "preset").choices = [("", "---------"), *preset_choices()]
        describe_preset_parameter(self)
        self.discovered = discovered or {}
        #: Provider keyword arguments (not saved) and connection defaults, set by clean().
        self.provider_fields: dict[str, Any] = {}
        self.defaults: dict[str, Any] = {}

    def clean_slug(self) -> str:
        slug = self.cleaned_data.get("slug") or slugify(self.data.get(self.add_prefix("name"), ""))
        if not slug:
            raise forms.ValidationError("Enter a slug (letters, digits, - and _).")
        if Connection.objects.filter(slug=slug).exists():
            raise forms.ValidationError(f"A connection with the slug {slug!r} already exists.")
        return slug

    def clean(self) -> dict[str, Any]:
        super().clean()  # a Form's clean() returns self.cleaned_data
        cleaned = self.cleaned_data
        source = cleaned.get("source")
        handler = getattr(self, f"_from_{source}", None)
        if handler is not None:
            handler(cleaned)
        return cleaned

    def _from_preset(self, cleaned: dict) -> None:
        if not cleaned.get("preset"):
            self.add_error("preset", "Choose a preset.")
            return
        preset = get_preset(cleaned["preset"])
        value = cleaned.get("preset_parameter", "") or site_parameter_defaults().get(preset.key)
        try:
            pending = preset.pending_parameters
            resolved = preset.resolve(**({pending[0]: value} if pending and value else {}))
            self.provider_fields = resolved.provider_fields()
        except ValueError as err:
            self.add_error("preset_parameter", str(err))
            return
        self.defaults = resolved.connection_defaults()

    def _from_issuer(self, cleaned: dict) -> None:
        issuer = cleaned.get("issuer", "")
        if not issuer:
            self.add_error("issuer", "Enter the issuer URL, e.g. https://accounts.example.com.")
            return
        if self.discovered.get("issuer") == issuer:
            self.provider_fields = dict(self.discovered["fields"])
        else:
            try:
                fields = discover_provider(issuer)
            except DiscoveryFailed as err:
                self.add_error("issuer", f"Discovery failed: {err}")
                return
            fields["discovered_at"] = fields["discovered_at"].isoformat()
            self.provider_fields = fields
        self.defaults = {"scopes": "openid" if self._oidc() else ""}

    def _from_resource(self, cleaned: dict) -> None:
        found = resource_fields(cleaned.get("resource_url", ""), self.discovered)
        if isinstance(found, str):
            self.add_error("resource_url", found)
            return
        self.provider_fields, self.defaults = found

    def _oidc(self) -> bool:
        return "openid" in self.provider_fields.get("scopes_supported", [])

    def _from_existing(self, cleaned: dict) -> None:
        provider = cleaned.get("existing_provider")
        if provider is None:
            self.add_error("existing_provider", "Choose a provider.")
            return
        names = (
            *PROVIDER_URL_FIELDS,
            "requires_par",
            "supported_grant_types",
            "code_challenge_methods",
            "token_endpoint_auth_methods",
        )
        self.provider_fields = {name: getattr(provider, name) for name in names}
        self.provider_fields["pk"] = provider.pk
        self.provider_fields["dpop_signing_algs"] = provider.dpop_signing_algs
        meta = provider.metadata or {}
        self.defaults = {
            "scopes": " ".join(meta.get("default_scopes", [])),
            "api_base_url": meta.get("api_base_url", ""),
            "test_path": meta.get("test_path", ""),
        }

    def _from_custom(self, cleaned: dict) -> None:
        self.provider_fields = {}


def offered_grants(provider_fields: dict[str, Any]) -> list[str]:
    """The grant types the provider supports, when known (R6: PKCE only with S256)."""
    grants = set(provider_fields.get("supported_grant_types") or [])
    methods = provider_fields.get("code_challenge_methods") or []
    if not grants and not methods:
        return list(GRANT_ORDER)
    code = "authorization_code" in grants
    offered = {
        GrantType.AUTHORIZATION_CODE: code,
        GrantType.AUTHORIZATION_CODE_PKCE: code
        and "S256" in methods
        or "authorization_code_pkce" in grants,
        GrantType.CLIENT_CREDENTIALS: "client_credentials" in grants,
    }
    return [grant for grant in GRANT_ORDER if offered[grant]]


def offers_private_key_jwt(provider_fields: dict[str, Any]) -> bool:
    """A signed JWT is offered when the provider lists it, or lists no methods (unknown)."""
    methods = provider_fields.get("token_endpoint_auth_methods") or []
    return not methods or PRIVATE_KEY_JWT in methods


def preselected_auth_method(supported: list[str]) -> str | None:
    """The first method the provider lists that the wizard knows.

    A signed JWT only when the provider lists nothing else: the admin usually arrives with a
    client secret from the provider's registration page, and opts into a key pair knowingly.
    """
    known = [method for method in supported if method in ClientAuthMethod.values]
    return next((m for m in known if m != PRIVATE_KEY_JWT), known[0] if known else None)


class GrantForm(forms.Form):
    """Step 2: the grant type, limited to what the provider supports."""

    grant_type = forms.ChoiceField(
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": "The provider does not support this grant type."},
    )

    def __init__(self, *args: Any, offered: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.offered = list(GRANT_ORDER) if offered is None else offered
        labels = dict(GrantType.choices)
        choice_field(self, "grant_type").choices = [
            (grant, f"{labels[grant]} — {GRANT_HELP[grant]}") for grant in self.offered
        ]
        self.fields["grant_type"].initial = self.offered[0] if self.offered else None

    def clean(self):
        if not self.offered:
            raise forms.ValidationError(
                "The provider supports none of the grant types oauthconn offers (authorization "
                "code, with PKCE when it advertises S256, and client credentials). Go back and "
                "choose another provider."
            )
        return super().clean()


class ClientForm(forms.Form):
    """Step 3: the client registration, the endpoints and what to ask for."""

    client_id = forms.CharField(label="Client ID", max_length=500)
    client_secret = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only; not needed for a public PKCE client or a signed JWT.",
    )
    client_auth_method = forms.ChoiceField(
        label="Client authentication",
        choices=ClientAuthMethod.choices,
        error_messages={
            "invalid_choice": "The provider does not support this client authentication."
        },
    )
    key_type = forms.ChoiceField(
        label="Key type",
        choices=KEY_TYPE_CHOICES,
        initial="RSA",
        required=False,
        widget=forms.RadioSelect,
        help_text="Only for a signed JWT (private_key_jwt): a new key pair of this type is "
        "generated when you save. The private key is stored encrypted and never shown.",
    )
    authorization_endpoint = url_field()
    token_endpoint = url_field(required=True)
    revocation_endpoint = url_field()
    userinfo_endpoint = url_field()
    scopes = forms.CharField(required=False)
    extra_authorize_params = forms.JSONField(
        label="Extra authorization parameters", required=False, initial=dict
    )
    extra_token_params = forms.JSONField(
        label="Extra token parameters", required=False, initial=dict
    )
    api_base_url = url_field("API base URL")
    test_path = forms.CharField(required=False, max_length=2000)

    ENDPOINTS = (
        "authorization_endpoint",
        "token_endpoint",
        "revocation_endpoint",
        "userinfo_endpoint",
    )

    def __init__(
        self,
        *args: Any,
        grant_type: str = GrantType.AUTHORIZATION_CODE_PKCE,
        provider_fields: dict[str, Any] | None = None,
        separator: str = " ",
        secret_set: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.grant_type = grant_type
        self.provider_fields = provider_fields or {}
        self.secret_set = secret_set
        if secret_set:
            self.fields["client_secret"].help_text = "Set. Leave empty to keep it."
        self.fields["client_id"].help_text = preset_setup(self.provider_fields.get("preset"))
        sep = "a comma" if separator == "," else "a space"
        self.fields[
            "scopes"
        ].help_text = f"Separated by spaces; sent joined with {sep}, as this provider expects."
        if "pk" in self.provider_fields:
            # An existing provider is shared by other connections: edit it on its own page.
            for name in self.ENDPOINTS:
                self.fields[name].disabled = True
        self.offers_private_key_jwt = offers_private_key_jwt(self.provider_fields)
        choices = ClientAuthMethod.choices  # the field's own, as a list of pairs
        if not self.offers_private_key_jwt:
            choices = [c for c in choices if c[0] != PRIVATE_KEY_JWT]
            del self.fields["key_type"]
        method = choice_field(self, "client_auth_method")
        method.choices = choices
        offered = [value for value, _label in choices]
        method.help_text = auth_method_help(chosen_value(self, "client_auth_method"), offered)
        add_dpop_field(self, self.provider_fields)
        offer_par(self, self.provider_fields, grant_type)
        offer_registration(self, self.provider_fields)

    def clean_key_type(self) -> str:
        return self.cleaned_data.get("key_type") or "RSA"

    def clean_scopes(self) -> str:
        return " ".join(self.cleaned_data["scopes"].replace(",", " ").split())

    def clean(self) -> dict[str, Any]:
        super().clean()  # a Form's clean() returns self.cleaned_data
        cleaned = self.cleaned_data
        # R57: a client registered automatically gets its id, secret and method from the
        # provider; only a typed client needs them here.
        registering = bool(cleaned.get("register_client"))
        if not registering and not cleaned.get("client_id"):
            self.add_error("client_id", "Enter the client id, or register automatically.")
        if registering and cleaned.get("client_id"):
            # a typed id would silently give way to the registered one
            self.add_error("client_id", "Leave this empty to register automatically.")
        try:
            push = self.provider_fields.get("pushed_authorization_request_endpoint", "")
            values = {**cleaned, "grant_type": self.grant_type}
            values["pushed_authorization_request_endpoint"] = push
            validate_configuration(
                values,
                has_secret=registering or bool(cleaned.get("client_secret") or self.secret_set),
            )
        except ConfigurationError as err:
            add_configuration_errors(self, err)
        if "pk" not in self.provider_fields:
            fields = {**self.provider_fields, **{n: cleaned.get(n, "") for n in self.ENDPOINTS}}
            conflict = issuer_conflict(fields)
            if conflict:
                raise forms.ValidationError(conflict)
        return cleaned


def preset_setup(key: str | None) -> str:
    """A preset's notes on registering at its provider (docs/providers.md), or ""."""
    try:
        return get_preset(key).setup if key else ""
    except KeyError:  # a provider made from a preset that is no longer registered
        return ""


class ReviewForm(forms.Form):
    """Step 4: nothing to type; the page shows everything for a last look."""

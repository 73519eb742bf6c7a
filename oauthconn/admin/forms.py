"""Admin forms. Secrets are write-only: an empty field keeps the stored value."""

from __future__ import annotations

from django import forms

from oauthconn.exceptions import ConfigurationError
from oauthconn.http import check_url
from oauthconn.models import Connection, Provider
from oauthconn.oauth.authorize import check_extra_parameters

PROVIDER_URL_FIELDS = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "userinfo_endpoint",
    "jwks_uri",
)


def clean_urls(form: forms.ModelForm, names) -> None:
    for name in names:
        value = form.cleaned_data.get(name)
        if value:
            try:
                check_url(value, field=form.fields[name].label or name)
            except ConfigurationError as err:
                form.add_error(name, str(err))


class ProviderForm(forms.ModelForm):
    class Meta:
        model = Provider
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        clean_urls(self, PROVIDER_URL_FIELDS)
        return cleaned


class ConnectionForm(forms.ModelForm):
    new_client_secret = forms.CharField(
        label="Client secret",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only. Leave empty to keep the current secret.",
    )

    class Meta:
        model = Connection
        exclude = ["published_jwks", "private_key_id", "metadata", "created_by"]

    def clean(self):
        cleaned = super().clean()
        clean_urls(self, ["api_base_url"])
        for name in ("extra_authorize_params", "extra_token_params"):
            params = cleaned.get(name) or {}
            if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
                self.add_error(name, "Enter a JSON object of string values.")
                continue
            try:
                check_extra_parameters(params)
            except ConfigurationError as err:
                self.add_error(name, str(err))
        return cleaned

    def save(self, commit=True):
        secret = self.cleaned_data.get("new_client_secret")
        if secret:
            self.instance.client_secret = secret
        return super().save(commit)

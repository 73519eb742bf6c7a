"""The "Add connection" wizard (django-formtools), mounted in the admin by ConnectionAdmin.

Steps: basics → grant type → client and endpoints → review. Back and forward keep what was
typed; the storage seals the client secret (encrypts it with the oauthconn keyring) whenever a
step is stored in the session, and unseals it only in memory (SECURITY §3.2, STYLE example 7).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import urlsplit

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.datastructures import MultiValueDict
from django.utils.decorators import method_decorator
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.debug import sensitive_post_parameters
from formtools.wizard.storage.session import SessionStorage
from formtools.wizard.views import SessionWizardView

from oauthconn import flows
from oauthconn.admin.features import par_summary
from oauthconn.admin.wizard_forms import (
    KEY_TYPE_LABELS,
    PRIVATE_KEY_JWT,
    BasicsForm,
    ClientForm,
    GrantForm,
    ReviewForm,
    offered_grants,
    preselected_auth_method,
)
from oauthconn.conf import oauthconn_settings
from oauthconn.crypto import Sealed
from oauthconn.exceptions import OAuthConnError
from oauthconn.flows.keys import jwks_url, rotate_key
from oauthconn.flows.providers import find_or_create_provider
from oauthconn.flows.registration import register, registration_fields
from oauthconn.flows.validation import needs_secret
from oauthconn.models import ClientAuthMethod, Connection, GrantType, Provider, Token
from oauthconn.presets import preset_choices
from oauthconn.views import private

SECRET_KEY_IN_STEP = "client-client_secret"
# 0.1.0 stored "sealed:" + ciphertext; still read, for a wizard left open across an upgrade.
LEGACY_PREFIX = "sealed:"


class SealedSessionStorage(SessionStorage):
    """Session storage that keeps secret fields only as ciphertext (``Sealed``, oauthconn.crypto).

    :attr:`secret_fields` names them as they appear in step data (``<step>-<field>``);
    :meth:`set_step_data` seals them itself, so no caller can store one in plaintext. An
    empty secret field keeps the secret stored earlier, so stepping back and forward does not
    lose it (the password widget never renders it back).
    """

    secret_fields: tuple[str, ...] = (SECRET_KEY_IN_STEP,)

    def set_step_data(self, step: str, cleaned_data: Any) -> None:
        earlier = self.data[self.step_data_key].get(step) or {}
        super().set_step_data(step, cleaned_data)
        stored = self.data[self.step_data_key][step]
        for key in self.secret_fields:
            values = stored.pop(key, [])
            # QueryDicts are stored as lists; a plain dict may hold the string itself.
            typed = [v for v in ([values] if isinstance(values, str) else values) if v]
            if typed:
                stored[key] = [Sealed.seal(typed[0]).ciphertext]
            elif any(earlier.get(key, [])):
                stored[key] = earlier[key]

    def get_step_data(self, step: str) -> MultiValueDict[str, Any] | None:
        values = super().get_step_data(step)
        if values is None or not any(values.get(key) for key in self.secret_fields):
            return values
        values = values.copy()
        for key in self.secret_fields:
            if values.get(key):
                values[key] = unseal(values[key])
        return values

    def has_secret(self, step: str) -> bool:
        raw = self.data[self.step_data_key].get(step) or {}
        return any(any(raw.get(key, [])) for key in self.secret_fields)


def unseal(ciphertext: str) -> str:
    """The plaintext of a secret the storage sealed (DecryptionFailed if it cannot be read)."""
    return Sealed(ciphertext.removeprefix(LEGACY_PREFIX)).reveal()


@method_decorator(sensitive_post_parameters(SECRET_KEY_IN_STEP), name="dispatch")
@method_decorator(xframe_options_deny, name="dispatch")
class ConnectionWizard(SessionWizardView):
    """Create a connection in four steps, then authorize it (or fetch a token) at once."""

    form_list = [
        ("basics", BasicsForm),
        ("grant", GrantForm),
        ("client", ClientForm),
        ("review", ReviewForm),
    ]
    storage_name = "oauthconn.admin.wizard.SealedSessionStorage"
    template_name = "admin/oauthconn/connection/wizard.html"
    model_admin: Any = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not self.model_admin.has_add_permission(request):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)

    # --- what each step knows about the earlier ones ---------------------------------------

    @property
    def provider_fields(self) -> dict[str, Any]:
        return self.storage.extra_data.get("provider_fields", {})

    def get_form_kwargs(self, step: str | None = None) -> dict[str, Any]:
        if step == "basics":
            return {"discovered": self.storage.extra_data.get("discovered")}
        if step == "grant":
            return {"offered": offered_grants(self.provider_fields)}
        if step == "client":
            grant = (self.storage.get_step_data("grant") or {}).get("grant-grant_type")
            return {
                "grant_type": grant or GrantType.AUTHORIZATION_CODE_PKCE,
                "provider_fields": self.provider_fields,
                "separator": self.provider_fields.get("scope_separator", " "),
                "secret_set": self.storage.has_secret("client"),
            }
        return {}

    def get_form_initial(self, step: str) -> dict[str, Any]:
        if step != "client":
            return {}
        fields = self.provider_fields
        initial = {name: fields.get(name, "") for name in ClientForm.ENDPOINTS}
        defaults = self.storage.extra_data.get("defaults", {})
        initial.update({k: v for k, v in defaults.items() if k in ClientForm.base_fields})
        if "client_auth_method" not in initial:
            # From discovery or an existing provider: what it lists, a secret method first.
            supported = fields.get("token_endpoint_auth_methods") or []
            initial["client_auth_method"] = preselected_auth_method(supported)
        return initial

    def process_step(self, form: forms.BaseForm) -> Any:
        if isinstance(form, BasicsForm):  # the basics step's form, and no other step's
            extra = self.storage.extra_data
            extra["provider_fields"] = form.provider_fields
            extra["defaults"] = form.defaults
            extra["slug"] = form.cleaned_data["slug"]
            if form.cleaned_data.get("source") == "issuer":
                extra["discovered"] = {
                    "issuer": form.cleaned_data["issuer"],
                    "fields": form.provider_fields,
                }
            if form.cleaned_data.get("source") == "resource":
                extra["discovered"] = {
                    "resource": form.cleaned_data["resource_url"],
                    "fields": form.provider_fields,
                    "defaults": form.defaults,
                }
            self.storage.extra_data = extra
        return super().process_step(form)

    def render_goto_step(self, goto_step: str, **kwargs: Any) -> HttpResponse:
        # Going back keeps what was typed on this step, valid or not; "done" revalidates all.
        current = self.steps.current
        if any(key.startswith(f"{current}-") for key in self.request.POST):
            form = self.get_form(data=self.request.POST, files=self.request.FILES)
            self.storage.set_step_data(current, self.get_form_step_data(form))
        return super().render_goto_step(goto_step, **kwargs)

    # --- pages -----------------------------------------------------------------------------

    def get_context_data(self, form: forms.BaseForm, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(form=form, **kwargs)
        admin = self.model_admin
        context.update(
            admin.admin_site.each_context(self.request),
            opts=admin.model._meta,
            title=f"Add connection · step {self.steps.step1} of {self.steps.count}",
            step_titles=["Basics", "Grant type", "Client and endpoints", "Review"],
            provider_fields=self.provider_fields,
            insecure_dev=oauthconn_settings.ALLOW_INSECURE_LOOPBACK,
        )
        if self.steps.current in ("client", "review"):
            context["redirect_uri"] = self._redirect_uri()
        if self.steps.current == "client" and getattr(form, "offers_private_key_jwt", False):
            context["jwks_url"] = self._jwks_url()
        if self.steps.current == "review":
            context["review"] = self._review()
            if context["review"]["client"].get("client_auth_method") == PRIVATE_KEY_JWT:
                context["jwks_url"] = self._jwks_url()
            endpoint = context["review"]["client"].get("authorization_endpoint") or ""
            context["authorize_host"] = urlsplit(endpoint).netloc
        return context

    def _redirect_uri(self) -> str:
        slug = self.storage.extra_data.get("slug")
        return Connection(slug=slug).redirect_uri if slug else ""

    def _jwks_url(self) -> str:
        # Known before saving (it depends on the slug only), so the admin can register it at
        # the provider before "Save" fetches a client credentials token.
        slug = self.storage.extra_data.get("slug")
        return jwks_url(Connection(slug=slug)) if slug else ""

    def _review(self) -> dict[str, Any]:
        def step(name: str) -> dict[str, Any]:
            data = self.get_cleaned_data_for_step(name)
            return dict(data) if data else {}

        basics, grant, client = step("basics"), step("grant"), step("client")
        client["client_secret"] = "set" if self.storage.has_secret("client") else "not set"
        if client.get("client_auth_method") == PRIVATE_KEY_JWT:
            client["client_secret"] = "not used (signed JWT)"
        labels = {
            # A missing value reads as "", which no choice has: the label stays empty.
            "key_type": KEY_TYPE_LABELS.get(client.get("key_type", ""), ""),
            "grant": dict(GrantType.choices).get(grant.get("grant_type", ""), ""),
            "auth": dict(ClientAuthMethod.choices).get(client.get("client_auth_method", ""), ""),
            "preset": dict(preset_choices()).get(basics.get("preset", ""), ""),
            "par": par_summary(client.get("use_par"), self.provider_fields),
            "registration": "Automatic (RFC 7591)" if client.get("register_client") else "",
            "resource": basics.get("resource_url", "")
            if basics.get("source") == "resource"
            else "",
        }
        return {"basics": basics, "grant": grant, "client": client, "labels": labels}

    # --- the end -------------------------------------------------------------------------

    def done(
        self,
        form_list: list[forms.BaseForm],
        form_dict: dict[str, forms.BaseForm],  # formtools always passes it, by step name
        **kwargs: Any,
    ) -> HttpResponse:
        try:
            registered = self._register(form_dict)
        except OAuthConnError as err:
            # Nothing was registered or stored; the wizard's data stays for another try.
            messages.error(self.request, f"The client could not be registered: {err}")
            return self.render_goto_step("client")
        connection = self._save(form_dict, registered)
        return self._after_save(connection)

    def _register(self, steps: Mapping[str, forms.BaseForm]) -> dict[str, Any]:
        """RFC 7591 before anything is saved: the Connection fields it fills, or {}."""
        client = steps["client"].cleaned_data
        if not client.get("register_client"):
            return {}
        basics = steps["basics"].cleaned_data
        fields = self.provider_fields
        registration = register(
            fields["registration_endpoint"],
            redirect_uri=Connection(slug=basics["slug"]).redirect_uri,
            client_name=f"{basics['name']} ({self.request.get_host()})",
            auth_methods=fields.get("token_endpoint_auth_methods") or [],
            scope=client["scopes"],
        )
        return registration_fields(registration)

    def _save(self, steps: Mapping[str, forms.BaseForm], registered: dict[str, Any]) -> Connection:
        # formtools is untyped; form_list above says which form class each step has.
        basics_form = cast(BasicsForm, steps["basics"])
        basics = basics_form.cleaned_data
        client = steps["client"].cleaned_data
        method = client["client_auth_method"]
        with transaction.atomic():
            provider = self._provider(basics_form, client, basics)
            values: dict[str, Any] = dict(
                slug=basics["slug"],
                name=basics["name"],
                per_user=basics["sharing"] == "per_user",
                provider=provider,
                grant_type=steps["grant"].cleaned_data["grant_type"],
                client_id=client["client_id"],
                # A public client has no secret: one typed before switching to "none" is dropped.
                client_secret=client["client_secret"] if needs_secret(method) else "",
                client_auth_method=method,
                scopes=client["scopes"],
                extra_authorize_params=client.get("extra_authorize_params") or {},
                extra_token_params=client.get("extra_token_params") or {},
                api_base_url=client["api_base_url"],
                test_path=client["test_path"],
                use_dpop=bool(client.get("use_dpop")),
                use_par=bool(client.get("use_par")),
                resource=basics.get("resource_url", "") if basics["source"] == "resource" else "",
                created_by=self.request.user,
            )
            connection = Connection.objects.create(**{**values, **registered})
            if connection.client_auth_method == PRIVATE_KEY_JWT:
                rotate_key(connection, client.get("key_type") or "RSA")
            self.model_admin.log_addition(self.request, connection, [{"added": {}}])
        return connection

    def _provider(
        self, basics_form: BasicsForm, client: dict[str, Any], basics: dict[str, Any]
    ) -> Provider:
        fields = dict(basics_form.provider_fields)
        if "pk" in fields:
            return Provider.objects.get(pk=fields["pk"])
        fields.update({name: client.get(name, "") for name in ClientForm.ENDPOINTS})
        provider, _ = find_or_create_provider(fields, slug=basics["slug"], name=basics["name"])
        return provider

    def _after_save(self, connection: Connection) -> HttpResponse:
        request = self.request
        page = reverse("admin:oauthconn_connection_change", args=[connection.pk])
        if connection.client_auth_method == PRIVATE_KEY_JWT:
            messages.info(request, key_generated(connection))
        if connection.per_user:
            messages.success(
                request,
                f"{connection.name} was saved. Users connect it from "
                "their “Your connections” page.",
            )
            return HttpResponseRedirect(page)
        if not request.user.has_perm("oauthconn.authorize_connection"):
            messages.warning(
                request,
                f"{connection.name} was saved. Someone allowed to "
                "authorize connections must authorize it.",
            )
            return HttpResponseRedirect(page)
        try:
            outcome = flows.connect(connection, None, user=request.user, session=request.session)
        except OAuthConnError as err:
            hint = ""
            if connection.client_auth_method == PRIVATE_KEY_JWT:
                hint = " Register the JWKS URL at the provider, then fetch a token again."
            messages.error(request, f"{connection.name} was saved, but: {err}{hint}")
            return HttpResponseRedirect(page)
        if isinstance(outcome, flows.Redirect):
            return private(HttpResponseRedirect(outcome.url))
        messages.success(request, token_obtained(connection, outcome.renewal.token))
        return HttpResponseRedirect(page)


def key_generated(connection: Connection) -> str:
    return (
        f"A key pair was generated for {connection.name} (key id {connection.private_key_id}). "
        f"Register the JWKS URL {jwks_url(connection)} at the provider: it serves the public "
        "key; the private key never leaves this site."
    )


def token_obtained(connection: Connection, token: Token) -> str:
    until = token.expires_at.strftime("%Y-%m-%d %H:%M UTC") if token.expires_at else "unknown"
    scopes = token.scope or "not stated by the provider"
    return (
        f"{connection.name} was saved and a token obtained: valid until {until}, scopes: {scopes}."
    )

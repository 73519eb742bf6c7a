"""Optional protocol features, offered only where the provider supports them (wizard, pages).

Each feature is one form field added to the client step when the provider's metadata says the
provider can do it, with a one-line explanation; the review step and the connection page say
what was chosen. Pushed authorization requests (RFC 9126, SECURITY R55) are the first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

from oauthconn.exceptions import DiscoveryFailed
from oauthconn.flows.registration import discover_resource
from oauthconn.models import Connection, GrantType

PAR_LABEL = "Push authorization requests (PAR)"
PAR_HELP = (
    "RFC 9126: the authorization request goes to the provider server to server, with the "
    "client's authentication; the browser carries only a one-time reference."
)
PAR_REQUIRED = " This provider requires it."


def offer_par(form: forms.Form, provider_fields: Mapping[str, Any], grant_type: str) -> None:
    """Add the ``use_par`` checkbox when the provider has a push endpoint (forced on when it
    requires pushed requests); browser grants only, since only they have a request to push."""
    endpoint = provider_fields.get("pushed_authorization_request_endpoint")
    if not endpoint or grant_type == GrantType.CLIENT_CREDENTIALS:
        return
    required = bool(provider_fields.get("requires_par"))
    form.fields["use_par"] = forms.BooleanField(
        label=PAR_LABEL,
        required=False,
        initial=required,
        disabled=required,  # a disabled field's value is its initial one: True
        help_text=PAR_HELP + (PAR_REQUIRED if required else ""),
    )


def par_summary(chosen: bool | None, provider_fields: Mapping[str, Any]) -> str:
    """What the review step says about pushed requests; "" when they were not offered."""
    if chosen is None:
        return ""
    if provider_fields.get("requires_par"):
        return "Yes: required by the provider"
    return "Yes" if chosen else "No"


def connection_features(connection: Connection) -> list[tuple[str, str]]:
    """(label, sentence) for each optional feature the connection uses, for its page."""
    features = []
    if connection.pushes_requests:
        why = "required by the provider" if connection.provider.requires_par else "chosen"
        features.append(("Pushed authorization requests", f"On ({why}). {PAR_HELP}"))
    if connection.resource:
        features.append(
            ("Resource indicator", f"{connection.resource} (RFC 8707: tokens are for this API)")
        )
    if connection.registered_automatically:
        features.append(
            (
                "Client registration",
                "Registered automatically (RFC 7591); deleting the connection deletes it "
                "(RFC 7592).",
            )
        )
    return features


# --- connecting by an API's URL (RFC 9728) and dynamic registration (RFC 7591) ---------------

REGISTER_LABEL = "Register a client automatically"
REGISTER_HELP = (
    "RFC 7591: oauthconn registers this site at the provider and stores the client id, secret "
    "and registration access token encrypted; leave the client fields empty. Deleting the "
    "connection deletes the registration (RFC 7592)."
)


def resource_fields(
    url: str, discovered: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]] | str:
    """(provider fields, connection defaults) for an API's URL, or the error to show.

    ``discovered`` is what the wizard found for the last URL typed: going back and forward
    does not fetch it again.
    """
    if not url:
        return "Enter the API's URL, e.g. https://mcp.example.com/."
    if discovered.get("resource") == url:
        return dict(discovered["fields"]), dict(discovered["defaults"])
    try:
        found = discover_resource(url)
    except DiscoveryFailed as err:
        return f"Discovery failed: {err}"
    scopes = " ".join(found.scopes)
    return found.provider_fields, {"api_base_url": url, "scopes": scopes}


def offer_registration(form: forms.Form, provider_fields: Mapping[str, Any]) -> None:
    """Add ``register_client`` (checked) when the provider has a registration endpoint; the
    client id is then optional."""
    if not provider_fields.get("registration_endpoint"):
        return
    form.fields["register_client"] = forms.BooleanField(
        label=REGISTER_LABEL, required=False, initial=True, help_text=REGISTER_HELP
    )
    form.fields["client_id"].required = False
    form.fields["client_id"].help_text = "Leave empty when registering automatically."

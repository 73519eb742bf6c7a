"""Optional protocol features, offered only where the provider supports them (wizard, pages).

Each feature is one form field added to the client step when the provider's metadata says the
provider can do it, with a one-line explanation; the review step and the connection page say
what was chosen. Pushed authorization requests (RFC 9126, SECURITY R55) are the first.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import forms

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
    return features

"""The wizard's DPoP choice (RFC 9449): offered only when the provider says it accepts proofs.

Kept apart from :mod:`oauthconn.admin.wizard_forms`, which is long enough. The choice is the
connection's ``use_dpop``; its key pairs are made per grant by the flows.
"""

from __future__ import annotations

from typing import Any

from django import forms

LABEL = "Bind tokens with DPoP"
HELP = (
    "RFC 9449: each grant gets a key pair kept (encrypted) on this site, and every request "
    "proves it holds the key, so a stolen token is useless. The provider accepts it "
    "(proofs signed with {algs})."
)


def dpop_algs(provider_fields: dict[str, Any]) -> list[str]:
    """What the provider's metadata lists as ``dpop_signing_alg_values_supported``."""
    known = provider_fields.get("dpop_signing_algs")
    if known is None:
        metadata = provider_fields.get("metadata") or {}
        known = (
            metadata.get("dpop_signing_alg_values_supported")
            if isinstance(metadata, dict)
            else None
        )
    return [alg for alg in known if isinstance(alg, str)] if isinstance(known, list) else []


def add_dpop_field(form: forms.Form, provider_fields: dict[str, Any]) -> None:
    """Add the ``use_dpop`` checkbox to ``form`` when the provider supports DPoP."""
    algs = dpop_algs(provider_fields)
    if algs:
        form.fields["use_dpop"] = forms.BooleanField(
            label=LABEL, required=False, help_text=HELP.format(algs=", ".join(algs))
        )

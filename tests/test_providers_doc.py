"""Provider setup notes: one per shipped preset, docs/providers.md generated from them, and the
wizard's client step showing the chosen preset's notes."""

from __future__ import annotations

import runpy
from pathlib import Path

from django.urls import reverse
from django.utils.html import escape

from oauthconn.presets import get_preset
from oauthconn.presets.providers import BUILTIN_PRESETS
from oauthconn.presets.setup_notes import SETUP_NOTES

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = runpy.run_path(str(ROOT / "scripts" / "providers_doc.py"))
ADD = reverse("admin:oauthconn_connection_add")


def test_every_shipped_preset_has_setup_notes_and_no_note_is_orphaned():
    assert all(preset.setup for preset in BUILTIN_PRESETS)
    assert set(SETUP_NOTES) == {preset.key for preset in BUILTIN_PRESETS}


def test_docs_providers_md_is_generated_from_the_presets():
    """Run scripts/providers_doc.py after changing a preset or its notes."""
    assert (ROOT / "docs" / "providers.md").read_text() == SCRIPT["render"]()


def test_docs_providers_md_has_a_section_with_the_notes_of_each_preset():
    text = (ROOT / "docs" / "providers.md").read_text()
    for preset in BUILTIN_PRESETS:
        assert f"## {preset.name}\n\nPreset `{preset.key}`." in text
        assert preset.setup in text


def test_the_wizard_client_step_shows_the_presets_setup_notes(staff_client):
    staff_client.get(ADD)
    staff_client.post(
        ADD,
        {
            "connection_wizard-current_step": "basics",
            "basics-name": "Zoom",
            "basics-sharing": "shared",
            "basics-source": "preset",
            "basics-preset": "zoom",
        },
    )
    response = staff_client.post(
        ADD,
        {"connection_wizard-current_step": "grant", "grant-grant_type": "authorization_code_pkce"},
    )
    assert response.context["wizard"]["steps"].current == "client"
    assert escape(get_preset("zoom").setup) in response.content.decode()

"""Provider presets: what oauthconn knows about well-known authorization servers, as data.

``get_preset("github").provider_fields()`` gives the keyword arguments for a ``Provider``;
templated presets (a tenant, a domain) are filled with ``resolve()`` first. See docs/presets.md.
"""

from __future__ import annotations

from oauthconn.presets.registry import (
    PRESETS,
    Preset,
    get_preset,
    preset_choices,
    register,
)

__all__ = ["PRESETS", "Preset", "get_preset", "preset_choices", "register"]

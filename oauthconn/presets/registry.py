"""The explicit preset registry: :data:`PRESETS`, :func:`register`, :func:`get_preset`.

:data:`PRESETS` is built from the shipped presets listed in :mod:`oauthconn.presets.providers`;
projects add their own with :func:`register` (from ``AppConfig.ready()``). Nothing registers
itself on import. The record type lives in :mod:`oauthconn.presets.record` and the parameter
validators in :mod:`oauthconn.presets.validators`; both are re-exported here.

This module never imports Django models, so presets can be read before the app registry is
ready (settings, checks, migrations).
"""

from __future__ import annotations

from oauthconn.presets.providers import BUILTIN_PRESETS
from oauthconn.presets.record import (
    AUTH_METHODS,
    GRANT_TYPES,
    TEMPLATED_FIELDS,
    URL_FIELDS,
    Preset,
    Validator,
)
from oauthconn.presets.validators import dns_label, host_name, local_origin, path_segment

__all__ = [
    "AUTH_METHODS",
    "GRANT_TYPES",
    "PRESETS",
    "TEMPLATED_FIELDS",
    "URL_FIELDS",
    "Preset",
    "Validator",
    "dns_label",
    "get_preset",
    "host_name",
    "local_origin",
    "path_segment",
    "preset_choices",
    "register",
]


# --- the registry --------------------------------------------------------------------------------


def register(preset: Preset, *, replace: bool = False) -> Preset:
    """Add a project's own preset to :data:`PRESETS` and return it.

    Call it from your ``AppConfig.ready()``, so the preset exists in every process before any
    request or command reads the registry. An existing key is refused unless ``replace=True``.
    """
    if not isinstance(preset, Preset):
        raise TypeError(f"register() takes a Preset, not {type(preset).__name__}.")
    if preset.key in PRESETS and not replace:
        raise ValueError(f"A preset with key {preset.key!r} is already registered.")
    PRESETS[preset.key] = preset
    return preset


def get_preset(key: str) -> Preset:
    """The preset registered under ``key``; KeyError naming the known keys otherwise."""
    try:
        return PRESETS[key]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise KeyError(f"No provider preset {key!r}; known presets: {known}.") from None


def preset_choices() -> list[tuple[str, str]]:
    """``(key, name)`` pairs sorted by name, for a form's select."""
    return sorted(((p.key, p.name) for p in PRESETS.values()), key=lambda c: c[1].casefold())


def _builtin_presets() -> dict[str, Preset]:
    presets: dict[str, Preset] = {}
    for preset in BUILTIN_PRESETS:
        if preset.key in presets:
            raise ValueError(f"Two shipped presets share the key {preset.key!r}.")
        presets[preset.key] = preset
    return presets


PRESETS: dict[str, Preset] = _builtin_presets()
"""Every known preset by key: the shipped ones, then those added with :func:`register`."""

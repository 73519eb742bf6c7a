"""The :class:`Preset` record: what oauthconn knows about one authorization server, as data.

The types module of the presets package: the shipped data (:mod:`oauthconn.presets.providers`,
:mod:`oauthconn.presets.setup_notes`) and the registry (:mod:`oauthconn.presets.registry`)
both depend on it, and it on neither.

This module never imports Django models, so presets can be read before the app registry is
ready (settings, checks, migrations).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from oauthconn.http.policy import is_loopback_host
from oauthconn.presets.validators import path_segment

__all__ = ["AUTH_METHODS", "GRANT_TYPES", "TEMPLATED_FIELDS", "URL_FIELDS", "Preset", "Validator"]

# The values of oauthconn.models.GrantType and ClientAuthMethod, repeated here so that presets
# load without the app registry; tests/test_presets.py keeps them in step.
GRANT_TYPES = ("authorization_code", "authorization_code_pkce", "client_credentials")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none", "private_key_jwt")

Validator = Callable[[str], str]
"""Checks one parameter value and returns it normalised; raises ValueError when it is unsafe."""

URL_FIELDS = (
    "authorization_endpoint",
    "token_endpoint",
    "revocation_endpoint",
    "userinfo_endpoint",
    "issuer",
    "jwks_uri",
    "api_base_url",
)
TEMPLATED_FIELDS = (*URL_FIELDS, "test_path")

_KEY = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*\Z")
_PARAMETER_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


# --- the record ----------------------------------------------------------------------------------


def _frozen_map() -> Any:
    return dataclasses.field(default_factory=dict, hash=False)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Preset:
    """What oauthconn knows about one authorization server, as data.

    URLs may contain ``{name}`` placeholders for the names in :attr:`parameters` (a tenant, a
    domain); :meth:`resolve` fills them. Construction checks the record, so a typo in a preset
    fails on import with a message naming the preset.
    """

    key: str
    name: str
    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str = ""
    userinfo_endpoint: str = ""
    issuer: str = ""
    jwks_uri: str = ""
    scope_separator: str = " "
    default_scopes: tuple[str, ...] = ()
    pkce: bool = False
    client_auth_method: str = "client_secret_basic"
    grant_types: tuple[str, ...] = ("authorization_code",)
    api_base_url: str = ""
    test_path: str = ""
    test_method: str = "GET"
    extra_authorize_params: Mapping[str, str] = _frozen_map()
    incremental_scopes_param: Mapping[str, str] = _frozen_map()
    """Added to an authorization that asks for more scopes than the connection's own, so the
    new token keeps the scopes granted before (Google's ``include_granted_scopes=true``;
    docs/scopes.md)."""
    sends_issuer: bool = False
    docs_url: str = ""
    setup: str = ""
    """Plain-text setup notes for admins: where to register, what to enter, quirks."""
    parameters: tuple[str, ...] = ()
    parameter_defaults: Mapping[str, str] = _frozen_map()
    parameter_labels: Mapping[str, str] = _frozen_map()
    """What the wizard calls each parameter ("Base URL", "Tenant"); the name, capitalized,
    when missing."""
    parameter_help: Mapping[str, str] = _frozen_map()
    """One sentence per parameter for the wizard: what to enter, with an example."""
    validators: Mapping[str, Validator] = _frozen_map()
    values: Mapping[str, str] = _frozen_map()
    """The parameter values filled in by :meth:`resolve`; empty on a shipped preset."""

    def __post_init__(self) -> None:
        for name in (
            "extra_authorize_params",
            "incremental_scopes_param",
            "parameter_defaults",
            "parameter_labels",
            "parameter_help",
            "validators",
            "values",
        ):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        for name in ("default_scopes", "grant_types", "parameters"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        try:
            self._check()
        except ValueError as err:
            raise ValueError(f"Preset {self.key!r}: {err}") from None

    # --- use ----------------------------------------------------------------------------------

    @property
    def pending_parameters(self) -> tuple[str, ...]:
        """The parameters still to be filled in by :meth:`resolve`."""
        return tuple(p for p in self.parameters if p not in self.values)

    def parameter_text(self, name: str) -> tuple[str, str]:
        """The wizard's label and help sentence for the parameter ``name``."""
        label = self.parameter_labels.get(name) or name.replace("_", " ").capitalize()
        return label, self.parameter_help.get(name, "")

    def resolve(self, **values: str) -> Preset:
        """Return a copy with every ``{parameter}`` filled in.

        A parameter left out takes its default from :attr:`parameter_defaults`; a missing one,
        an unknown one, or a value its validator refuses raises ValueError naming it.
        """
        pending = self.pending_parameters
        for name in values:
            if name not in pending:
                known = ", ".join(pending) or "none left to fill"
                raise ValueError(
                    f"The {self.name} preset has no parameter {name!r} to fill ({known})."
                )
        filled = {name: self._value(name, values) for name in pending}
        if not filled:
            return self
        # Any: the names are only known at run time, so mypy cannot match them to fields.
        templated: dict[str, Any] = {
            field: _fill(getattr(self, field), filled) for field in TEMPLATED_FIELDS
        }
        return dataclasses.replace(
            self,
            **templated,
            extra_authorize_params={
                k: _fill(v, filled) for k, v in self.extra_authorize_params.items()
            },
            values={**self.values, **filled},
        )

    def provider_fields(self) -> dict[str, Any]:
        """The keyword arguments to create or update a ``Provider`` from this preset.

        Raises ValueError while parameters are unresolved. Override ``slug`` and ``name`` in
        the result to keep several providers from one preset (two Okta organisations).
        """
        self._require_resolved()
        return {
            "slug": self.key,
            "name": self.name,
            "preset": self.key,
            **{field: getattr(self, field) for field in URL_FIELDS if field != "api_base_url"},
            "scope_separator": self.scope_separator,
            "sends_issuer": self.sends_issuer,
            "supported_grant_types": list(self.grant_types),
            "code_challenge_methods": ["S256"] if self.pkce else [],
            "token_endpoint_auth_methods": [self.client_auth_method],
            "metadata": self.metadata(),
        }

    def metadata(self) -> dict[str, Any]:
        """What the preset knows beyond ``Provider``'s columns, as JSON-ready data."""
        return {
            "api_base_url": self.api_base_url,
            "test_path": self.test_path,
            "test_method": self.test_method,
            "default_scopes": list(self.default_scopes),
            "docs_url": self.docs_url,
            "extra_authorize_params": dict(self.extra_authorize_params),
            "client_auth_method": self.client_auth_method,
            "parameters": dict(self.values),
        }

    def connection_defaults(self) -> dict[str, Any]:
        """Initial values for a ``Connection`` using this preset (the wizard's step 2 and 3).

        ``scopes`` is space separated, as ``Connection.scopes`` is stored; the provider's
        ``scope_separator`` applies when the scopes are sent.
        """
        self._require_resolved()
        pkce = "authorization_code_pkce" in self.grant_types
        return {
            "grant_type": "authorization_code_pkce" if pkce else self.grant_types[0],
            "client_auth_method": self.client_auth_method,
            "scopes": " ".join(self.default_scopes),
            "extra_authorize_params": dict(self.extra_authorize_params),
            "api_base_url": self.api_base_url,
            "test_path": self.test_path,
        }

    # --- internals ----------------------------------------------------------------------------

    def _value(self, name: str, values: Mapping[str, str]) -> str:
        value = values.get(name) or self.parameter_defaults.get(name)
        if not value:
            raise ValueError(f"The {self.name} preset needs the {name!r} parameter.")
        if not isinstance(value, str):
            raise ValueError(f"The {self.name} preset's {name!r} parameter must be a string.")
        validate = self.validators.get(name, path_segment)
        try:
            return validate(value)
        except ValueError as err:
            raise ValueError(f"The {self.name} preset's {name!r} parameter: {err}") from None

    def _require_resolved(self) -> None:
        if self.pending_parameters:
            names = ", ".join(f"{p}=..." for p in self.pending_parameters)
            raise ValueError(f"The {self.name} preset is a template: call resolve({names}) first.")

    def _check(self) -> None:
        if not _KEY.match(self.key):
            raise ValueError("key must be a slug of lowercase letters, digits, '-' and '_'.")
        if not self.name:
            raise ValueError("name is empty.")
        if not (self.authorization_endpoint and self.token_endpoint):
            raise ValueError("authorization_endpoint and token_endpoint are required.")
        if self.scope_separator not in (" ", ","):
            raise ValueError("scope_separator must be ' ' or ','.")
        if self.client_auth_method not in AUTH_METHODS:
            raise ValueError(f"client_auth_method must be one of {AUTH_METHODS}.")
        if not self.grant_types or not set(self.grant_types) <= set(GRANT_TYPES):
            raise ValueError(f"grant_types must be a non-empty subset of {GRANT_TYPES}.")
        if ("authorization_code_pkce" in self.grant_types) != self.pkce:
            raise ValueError("list 'authorization_code_pkce' in grant_types exactly when pkce.")
        if self.test_method not in ("GET", "POST"):
            raise ValueError("test_method must be 'GET' or 'POST'.")
        if self.test_path.startswith("/") or (self.api_base_url and self.api_base_url[-1] != "/"):
            raise ValueError("api_base_url must end with '/' and test_path be relative to it.")
        if not isinstance(self.setup, str):
            raise ValueError("setup must be a string.")
        if self.docs_url and not self.docs_url.startswith("https://"):
            raise ValueError("docs_url must use https.")
        self._check_parameters()
        for field in URL_FIELDS:
            self._check_url(field, getattr(self, field))

    def _check_parameters(self) -> None:
        for name in self.parameters:
            if not _PARAMETER_NAME.match(name):
                raise ValueError(f"parameter name {name!r} is not a lowercase identifier.")
        for mapping in (
            "parameter_defaults",
            "parameter_labels",
            "parameter_help",
            "validators",
            "values",
        ):
            extra = set(getattr(self, mapping)) - set(self.parameters)
            if extra:
                raise ValueError(f"{mapping} names undeclared parameters: {sorted(extra)}.")
        texts = [getattr(self, f) for f in TEMPLATED_FIELDS]
        texts += list(self.extra_authorize_params.values())
        used = {m for text in texts for m in _PLACEHOLDER.findall(text)}
        if used != set(self.pending_parameters):
            raise ValueError(
                f"placeholders {sorted(used)} do not match the parameters to fill "
                f"{sorted(self.pending_parameters)}."
            )
        if any(ch in _PLACEHOLDER.sub("", text) for text in texts for ch in "{}"):
            raise ValueError("a stray '{' or '}' in a URL.")

    def _check_url(self, field: str, url: str) -> None:
        if not url:
            return
        leading = re.match(r"\{([a-z0-9_]+)\}", url)
        if leading:
            # Only a parameter with its own validator may supply a URL's origin; that
            # validator (e.g. local_origin) is then responsible for the scheme.
            if leading.group(1) not in self.validators:
                raise ValueError(f"{field} starts with a parameter that has no validator.")
            return
        parts = urlsplit(url)
        secure = parts.scheme == "https" or (
            parts.scheme == "http" and is_loopback_host(parts.hostname or "")
        )
        if not secure or not parts.netloc or parts.fragment or "@" in parts.netloc:
            raise ValueError(f"{field} must be an https URL without user info or fragment.")


def _fill(text: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        text = text.replace("{" + name + "}", value)
    return text

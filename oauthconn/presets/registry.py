"""The :class:`Preset` record, the parameter validators, and the explicit preset registry.

A preset is plain data: the endpoints and habits of one authorization server. The shipped
presets are listed in :mod:`oauthconn.presets.providers`; :data:`PRESETS` is built from that
tuple below, and projects add their own with :func:`register` (from ``AppConfig.ready()``).
Nothing registers itself on import.

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

__all__ = [
    "AUTH_METHODS",
    "GRANT_TYPES",
    "PRESETS",
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
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]*\Z")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


# --- parameter validators -----------------------------------------------------------------------
# A parameter value is pasted into a URL, so a hostile one could move an endpoint (and with it
# the client secret and the tokens) to another host: "evil.example/x", "a@evil.example",
# "x#", "x?y=", "x:1". Every validator refuses those; most accept far less.


def path_segment(value: str) -> str:
    """The default validator: a tenant id or name, safe as a path segment or host label part.

    Letters, digits, ``.``, ``_``, ``~`` and ``-``, starting with a letter or digit; so no
    ``/ ? # @ :``, no ``%`` escapes, no whitespace and no ``..``.
    """
    if len(value) > 253 or not _SEGMENT.match(value):
        raise ValueError(
            f"{value!r} is not allowed: use letters, digits, '.', '_', '~' and '-' only "
            "(no '/', '?', '#', '@', ':' or spaces)."
        )
    return value


def host_name(value: str) -> str:
    """A DNS host name with at least two labels (``dev-123.okta.com``), returned lowercased.

    IP addresses and single labels such as ``localhost`` are refused: these parameters name a
    provider's public tenant host.
    """
    host = value.lower()
    labels = host.split(".")
    if (
        len(host) > 253
        or len(labels) < 2
        or not all(_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValueError(f"{value!r} is not a host name such as 'example.okta.com'.")
    return host


def dns_label(value: str) -> str:
    """One DNS label (a subdomain such as ``acme`` in ``acme.zendesk.com``), lowercased."""
    label = value.lower()
    if not _LABEL.match(label):
        raise ValueError(f"{value!r} is not a subdomain: use letters, digits and '-' only.")
    return label


def local_origin(value: str) -> str:
    """An origin ``scheme://host[:port]`` for a server the site runs itself (the demo).

    This is the one validator that lets ``:`` and ``/`` through, because its value *is* the
    origin of every endpoint. It accepts ``https://`` with any host name, and ``http://`` only
    for loopback hosts (``localhost``, ``127.0.0.1``, ``[::1]``): a development server has no
    TLS, and loopback traffic never leaves the machine (compare RFC 8252 §8.3). No user info,
    path, query or fragment; a trailing ``/`` is dropped.
    """
    if any(ch.isspace() for ch in value) or "@" in value or "\\" in value:
        raise ValueError(f"{value!r} is not an origin such as 'http://localhost:8000'.")
    parts = urlsplit(value)
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    host = parts.hostname or ""
    if (
        parts.scheme not in ("http", "https")
        or not host
        or not port_ok
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "#" in value
        or "?" in value
    ):
        raise ValueError(f"{value!r} is not an origin such as 'http://localhost:8000'.")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ValueError(f"{value!r}: http is allowed for a loopback host only; use https.")
    if parts.scheme == "https" and not is_loopback_host(host):
        host_name(host)
    return f"{parts.scheme}://{parts.netloc.lower()}"


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
    sends_issuer: bool = False
    docs_url: str = ""
    parameters: tuple[str, ...] = ()
    parameter_defaults: Mapping[str, str] = _frozen_map()
    validators: Mapping[str, Validator] = _frozen_map()
    values: Mapping[str, str] = _frozen_map()
    """The parameter values filled in by :meth:`resolve`; empty on a shipped preset."""

    def __post_init__(self) -> None:
        for name in ("extra_authorize_params", "parameter_defaults", "validators", "values"):
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
        return dataclasses.replace(
            self,
            **{field: _fill(getattr(self, field), filled) for field in TEMPLATED_FIELDS},
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
        if self.docs_url and not self.docs_url.startswith("https://"):
            raise ValueError("docs_url must use https.")
        self._check_parameters()
        for field in URL_FIELDS:
            self._check_url(field, getattr(self, field))

    def _check_parameters(self) -> None:
        for name in self.parameters:
            if not _PARAMETER_NAME.match(name):
                raise ValueError(f"parameter name {name!r} is not a lowercase identifier.")
        for mapping in ("parameter_defaults", "validators", "values"):
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
    # Imported here, after Preset exists, because the data module builds Preset records.
    from oauthconn.presets.providers import BUILTIN_PRESETS

    presets: dict[str, Preset] = {}
    for preset in BUILTIN_PRESETS:
        if preset.key in presets:
            raise ValueError(f"Two shipped presets share the key {preset.key!r}.")
        presets[preset.key] = preset
    return presets


PRESETS: dict[str, Preset] = _builtin_presets()
"""Every known preset by key: the shipped ones, then those added with :func:`register`."""

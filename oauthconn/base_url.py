"""API base URLs with per-grant fields (issue 12): ``{token:name}`` and ``{ask:name}``.

A connection's API base URL may hold fields whose values differ per grant:

- ``{token:instance_url}``: a member of the token response (Salesforce's ``instance_url``),
  taken when the grant is stored and updated by every renewal that sends it again;
- ``{ask:subdomain}``: a value typed by whoever connects (a tenant subdomain), on the
  admin's Authorize form or the user's Connect form.

The ``source:`` prefix keeps them apart from a preset's own ``{parameter}`` placeholders,
which are filled once when the connection is created (:mod:`oauthconn.presets.record`).

A field that starts the template stands for a whole origin (``https://host[:port]``, as
Salesforce sends ``instance_url``); anywhere else its value must be a host name (DNS labels
of letters, digits and ``-`` joined by single dots), so no value can add a ``/``, ``@``,
``:``, ``?``, ``#``, ``%`` or ``..`` to the URL. The resolved URL then passes
:func:`oauthconn.http.check_url` and, when its host is an IP literal or a loopback name, the
SSRF address policy (SECURITY R62); names are checked by the SSRF guard when connecting.

Pure: no models, no network, so presets can use it before the app registry is ready.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from oauthconn.exceptions import ConfigurationError, GrantValueRefused
from oauthconn.http.policy import check_url, destination_allowed, is_loopback_host

SOURCES = ("token", "ask")
FIELD = re.compile(r"\{(token|ask):([a-z][a-z0-9_]{0,39})\}")
#: a placeholder-looking thing that is not a field (a typo, an unknown source)
_BRACED = re.compile(r"\{[^{}]*\}")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOST_VALUE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z")
#: longest value kept (a host name is at most 253 characters, an origin a little more)
MAX_VALUE = 300
#: stands in for values when a template is checked before any grant exists
_SAMPLE_HOST = "example"
_SAMPLE_ORIGIN = "https://example.com"


@dataclass(frozen=True)
class GrantField:
    """One ``{source:name}`` field of a template."""

    source: str
    name: str
    #: the field starts the template, so its value is a whole origin
    origin: bool

    @property
    def label(self) -> str:
        """What the connect forms call it ("Subdomain" for ``{ask:subdomain}``)."""
        return self.name.replace("_", " ").capitalize()

    @property
    def input_name(self) -> str:
        """The form input that carries an asked value."""
        return f"ask_{self.name}"


@functools.lru_cache(maxsize=256)
def grant_fields(template: str) -> tuple[GrantField, ...]:
    """The fields of ``template`` in order; ConfigurationError for a malformed one."""
    fields: list[GrantField] = []
    for match in FIELD.finditer(template):
        source, name = match.groups()
        if any(f.name == name for f in fields):
            raise ConfigurationError(f"The API base URL names the field {name!r} twice.")
        origin = match.start() == 0
        if origin and template[match.end() : match.end() + 1] not in ("", "/"):
            raise ConfigurationError(
                f"The API base URL field {{{source}:{name}}} starts the URL, so it is a whole "
                "origin: follow it with '/' (e.g. {token:instance_url}/services/data/)."
            )
        fields.append(GrantField(source, name, origin))
    rest = FIELD.sub("", template)
    if "{" in rest or "}" in rest:
        stray = _BRACED.search(rest)
        shown = stray.group(0) if stray else "'{' or '}'"
        raise ConfigurationError(
            f"The API base URL has {shown}: per-grant fields are written {{token:name}} "
            "(from the token response) or {ask:name} (asked when connecting)."
        )
    return tuple(fields)


def has_grant_fields(template: str) -> bool:
    """True when ``template`` names per-grant fields (False for a malformed one)."""
    try:
        return bool(grant_fields(template))
    except ConfigurationError:
        return False


def asked_fields(template: str) -> list[GrantField]:
    """The fields typed when connecting; none for a malformed template (validation says why)."""
    try:
        return [f for f in grant_fields(template) if f.source == "ask"]
    except ConfigurationError:
        return []


def check_template(template: str, *, field: str = "API base URL") -> None:
    """Raise ConfigurationError (InsecureURL) unless ``template`` can resolve to a usable URL."""
    check_url(sample_filled(template), field=field)


def sample_filled(template: str) -> str:
    """``template`` with sample values, to check the rest of the URL before any grant exists."""
    fields = grant_fields(template)
    # http is allowed for loopback only (development), so only a loopback host can fill it.
    host = "localhost" if template.startswith("http://") else _SAMPLE_HOST
    return _fill(template, {f.name: _SAMPLE_ORIGIN if f.origin else host for f in fields})


def check_value(field: GrantField, value: object) -> str:
    """``value`` normalised for ``field``, or GrantValueRefused saying why."""
    if not isinstance(value, str) or not value.strip():
        raise GrantValueRefused(f"{field.label} is missing.", field=field.name)
    text = value.strip()
    if len(text) > MAX_VALUE:
        raise GrantValueRefused(f"{field.label} is too long.", field=field.name)
    return _origin_value(field, text) if field.origin else _host_value(field, text)


def _host_value(field: GrantField, text: str) -> str:
    lowered = text.lower()
    if not HOST_VALUE.match(lowered) or len(lowered) > 253:
        raise GrantValueRefused(
            f"{field.label} must be a host name or a part of one (letters, digits, '-' and "
            "single dots): no '/', '@', ':' or other characters.",
            field=field.name,
        )
    return lowered


def _origin_value(field: GrantField, text: str) -> str:
    refused = GrantValueRefused(
        f"{field.label} must be an origin like https://host (no path, user name, query or "
        "fragment).",
        field=field.name,
    )
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError) as err:
        raise refused from err
    if (
        url.scheme not in ("http", "https")
        or not url.host
        or url.userinfo
        or url.path not in ("", "/")
        or url.query
        or "#" in text
        or "\\" in text
    ):
        raise refused
    port = f":{url.port}" if url.port else ""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}{port}"


def resolve(template: str, values: Mapping[str, Any]) -> str:
    """The URL ``template`` stands for with ``values``, every value and the result checked.

    Raises GrantValueRefused for a missing or malformed value, or a result that the URL
    policy or the SSRF address policy refuses.
    """
    checked = {f.name: check_value(f, values.get(f.name)) for f in grant_fields(template)}
    url = _fill(template, checked)
    check_resolved(url)
    return url


def check_resolved(url: str) -> None:
    """:func:`check_url` plus the SSRF address policy for a host that needs no DNS to judge."""
    try:
        check_url(url, field="The API base URL of this grant")
    except ConfigurationError as err:
        raise GrantValueRefused(str(err)) from err
    host = httpx.URL(url).host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not is_loopback_host(host) and not host.endswith(".localhost"):
            return  # a name: the SSRF guard checks what it resolves to when connecting
        address = ipaddress.ip_address("127.0.0.1")
    if not destination_allowed(host, address):
        raise GrantValueRefused(
            f"The API base URL of this grant points to {host}, a private, loopback or "
            "reserved address (see OAUTHCONN['ALLOWED_PRIVATE_HOSTS'])."
        )


def values_for_grant(
    template: str, *, response: Mapping[str, Any], asked: Mapping[str, Any]
) -> dict[str, str]:
    """The values a new grant stores: token fields from ``response``, asked ones from
    ``asked``. All or nothing: GrantValueRefused when one is missing or refused."""
    fields = grant_fields(template)
    if not fields:
        return {}
    values = {f.name: (response if f.source == "token" else asked).get(f.name, "") for f in fields}
    for f in fields:
        if f.source == "token" and not values[f.name]:
            raise GrantValueRefused(
                f"The token response has no {f.name}, which the API base URL needs.",
                field=f.name,
            )
    resolve(template, values)
    return {f.name: check_value(f, values[f.name]) for f in fields}


def renewed_values(
    template: str, current: Mapping[str, Any], response: Mapping[str, Any]
) -> tuple[dict[str, str], str]:
    """The values after a renewal whose response is ``response``, and why any was refused.

    Token fields the response sends replace the current ones when the resolved URL is
    accepted; otherwise every current value is kept (a valid token is never lost over it).
    """
    try:
        fields = grant_fields(template)
    except ConfigurationError:
        return dict(current), ""  # a broken template is reported where it is used
    sent = {f.name: response[f.name] for f in fields if f.source == "token" and f.name in response}
    if not sent:
        return dict(current), ""
    candidate = {**current, **sent}
    try:
        resolve(template, candidate)
    except GrantValueRefused as err:
        kept = " The previous value is kept." if current else ""
        return dict(current), f"{err}{kept}"
    return {f.name: check_value(f, candidate[f.name]) for f in fields if f.name in candidate}, ""


def _fill(template: str, values: Mapping[str, str]) -> str:
    return FIELD.sub(lambda m: values[m.group(2)], template)

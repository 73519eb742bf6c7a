"""One validation of a provider's and a connection's configuration, for every edge.

The admin forms, the wizard and the API serializers each translate the one
:class:`~oauthconn.exceptions.ConfigurationError` raised here into their own error format:
``err.details["errors"]`` maps a field name to a readable message (``err.details["field"]``
names the first). Each rule is written once here: URLs (SECURITY R1), extra parameters (R13),
a public client uses PKCE (R7), a secret method has a secret, a code grant has an
authorization endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils.text import capfirst

from oauthconn.exceptions import ConfigurationError
from oauthconn.flows.configuration import issuer_conflict
from oauthconn.http import check_url
from oauthconn.models import ClientAuthMethod, Connection, GrantType, Provider
from oauthconn.oauth.authorize import check_extra_parameters

#: Client authentication methods that send a client secret (RFC 6749 §2.3.1).
SECRET_METHODS = frozenset(
    {ClientAuthMethod.CLIENT_SECRET_BASIC, ClientAuthMethod.CLIENT_SECRET_POST}
)
#: The URL fields a connection's configuration may carry (the wizard types the endpoints).
CONNECTION_URL_FIELDS = (*Provider.URL_FIELDS, "api_base_url", "resource")
PARAMS_FIELDS = ("extra_authorize_params", "extra_token_params")


def needs_secret(client_auth_method: str | None) -> bool:
    """True when ``client_auth_method`` authenticates with a client secret."""
    return client_auth_method in SECRET_METHODS


def url_label(name: str) -> str:
    """The name people read for a URL field, as the models spell it ("Token endpoint")."""
    model = Connection if name in ("api_base_url", "resource") else Provider
    field = model._meta.get_field(name)
    return capfirst(str(getattr(field, "verbose_name", name)))


def url_problems(values: Mapping[str, Any]) -> dict[str, str]:
    """``check_url`` for each URL in ``values`` that is set: field name → reason."""
    problems = {}
    for name, value in values.items():
        if not value:
            continue
        try:
            check_url(value, field=url_label(name))
        except ConfigurationError as err:
            problems[name] = str(err)
    return problems


def validate_provider(changes: Mapping[str, Any], *, instance: Provider | None = None) -> None:
    """The URLs in ``changes`` (R1), and one issuer meaning one server (R4) once ``changes``
    apply to ``instance`` (None: a new provider)."""
    problems = url_problems({n: changes[n] for n in Provider.URL_FIELDS if n in changes})
    if "issuer" not in problems:
        merged = {n: changes.get(n, getattr(instance, n, "")) for n in Provider.URL_FIELDS}
        conflict = issuer_conflict(merged, exclude_pk=getattr(instance, "pk", None))
        if conflict:
            problems["issuer"] = conflict
    raise_problems(problems)


def validate_configuration(
    values: Mapping[str, Any], *, has_secret: bool, provider: Provider | None = None
) -> None:
    """A connection's configuration, as far as ``values`` carries it.

    ``values`` holds the connection's fields (``grant_type``, ``client_auth_method``,
    ``api_base_url``, the extra parameters) and, where the caller types them (the wizard), the
    provider's endpoints; else ``provider`` is the one the connection uses. ``has_secret``: a
    secret was typed now or is stored. Raises one :class:`ConfigurationError` naming every
    field at fault.
    """
    urls = {name: values[name] for name in CONNECTION_URL_FIELDS if name in values}
    problems = url_problems(urls)
    endpoint = values.get("authorization_endpoint", getattr(provider, "authorization_endpoint", ""))
    problems.update(params_problems(values, authorization_endpoint=endpoint))
    for name, message in credential_problems(values, has_secret=has_secret).items():
        problems.setdefault(name, message)
    push = values.get(
        "pushed_authorization_request_endpoint",
        getattr(provider, "pushed_authorization_request_endpoint", ""),
    )
    extra = values.get("extra_authorize_params")
    if values.get("resource") and isinstance(extra, Mapping) and "resource" in extra:
        problems.setdefault(
            "resource", "The extra authorization parameters set 'resource' too: keep one."
        )
    if values.get("use_par") and not push:
        problems.setdefault(
            "use_par",
            "The provider has no pushed authorization request endpoint (RFC 9126) to push to.",
        )
    raise_problems(problems)


def params_problems(values: Mapping[str, Any], *, authorization_endpoint: str) -> dict[str, str]:
    """Extra parameters (R13): a JSON object of strings, no protocol parameter, no parameter
    the authorization endpoint's query already has."""
    endpoints = {"extra_authorize_params": authorization_endpoint or None}
    problems = {}
    for name in PARAMS_FIELDS:
        params = values.get(name)
        if params is None:
            continue
        if not isinstance(params, Mapping):
            problems[name] = 'Enter a JSON object of string values, e.g. {"audience": "api"}.'
            continue
        try:
            check_extra_parameters(params, endpoint=endpoints.get(name))
        except ConfigurationError as err:
            problems[name] = str(err)
    return problems


def credential_problems(values: Mapping[str, Any], *, has_secret: bool) -> dict[str, str]:
    """Grant and client authentication that can work together (RFC 6749 §2.1, R7)."""
    grant = values.get("grant_type") or GrantType.AUTHORIZATION_CODE_PKCE
    method = values.get("client_auth_method")
    problems = {}
    if method == ClientAuthMethod.NONE and grant != GrantType.AUTHORIZATION_CODE_PKCE:
        problems["client_auth_method"] = (
            "A public client (no client authentication) must use the code grant with PKCE."
        )
    if needs_secret(method) and not has_secret:
        problems["client_secret"] = "Enter the client secret for this authentication."
    browser = grant != GrantType.CLIENT_CREDENTIALS
    if browser and "authorization_endpoint" in values and not values["authorization_endpoint"]:
        problems["authorization_endpoint"] = "The code grant needs this endpoint."
    return problems


def raise_problems(problems: Mapping[str, str]) -> None:
    """Raise the one ConfigurationError for ``problems`` (field → message), if any."""
    if not problems:
        return
    field, message = next(iter(problems.items()))
    raise ConfigurationError(message, field=field, errors=dict(problems))

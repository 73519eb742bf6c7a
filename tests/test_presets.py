"""Provider presets: the shipped data, the parameter validators, resolve() and the registry."""

from __future__ import annotations

import dataclasses
import json
import re
from urllib.parse import urlsplit

import pytest

from oauthconn.base_url import FIELD as GRANT_FIELD
from oauthconn.base_url import sample_filled
from oauthconn.models import ClientAuthMethod, Connection, GrantType, Provider
from oauthconn.presets import PRESETS, Preset, get_preset, preset_choices, register, registry
from oauthconn.presets.providers import BUILTIN_PRESETS
from oauthconn.presets.registry import (
    AUTH_METHODS,
    GRANT_TYPES,
    URL_FIELDS,
    dns_label,
    host_name,
    local_origin,
    path_segment,
)

# A plausible value for every parameter name the shipped presets use.
SAMPLE_VALUES = {
    "tenant": "contoso.onmicrosoft.com",
    "domain": "example.okta.com",
    "subdomain": "acme",
    "base": "http://localhost:8000",
}
HOSTILE_VALUES = ["evil.example/x", "a@b", "x#", "a b", "x?y=1", "x:1", "..", "x\\y", "%2F"]

SHIPPED = [pytest.param(p, id=p.key) for p in BUILTIN_PRESETS]
PUBLIC = [pytest.param(p, id=p.key) for p in BUILTIN_PRESETS if p.key != "demo"]
TEMPLATED = [pytest.param(p, id=p.key) for p in BUILTIN_PRESETS if p.parameters]
REQUIRED = [
    pytest.param(p, id=p.key)
    for p in BUILTIN_PRESETS
    if p.pending_parameters and not p.parameter_defaults
]


def resolved(preset: Preset) -> Preset:
    return preset.resolve(**{name: SAMPLE_VALUES[name] for name in preset.parameters})


def urls(preset: Preset) -> list[str]:
    # A per-grant field ({token:instance_url}) is checked when the grant arrives
    # (tests/test_grant_base_url.py); the rest of the URL is checked here.
    found = [getattr(preset, field) for field in URL_FIELDS if getattr(preset, field)]
    return [sample_filled(url) if GRANT_FIELD.search(url) else url for url in found]


def minimal(**overrides) -> Preset:
    fields = {
        "key": "acme",
        "name": "Acme",
        "authorization_endpoint": "https://acme.example/authorize",
        "token_endpoint": "https://acme.example/token",
    }
    return Preset(**{**fields, **overrides})


# --- the shipped data ----------------------------------------------------------------------------


def test_at_least_twelve_presets_besides_demo():
    assert len([p for p in BUILTIN_PRESETS if p.key != "demo"]) >= 12
    assert "demo" in PRESETS


def test_keys_are_unique_and_registered():
    keys = [p.key for p in BUILTIN_PRESETS]
    assert len(keys) == len(set(keys))
    assert all(PRESETS[key] is preset for key, preset in zip(keys, BUILTIN_PRESETS, strict=True))


def test_constants_match_the_model_choices():
    assert set(GRANT_TYPES) == set(GrantType.values)
    assert set(AUTH_METHODS) == set(ClientAuthMethod.values)


@pytest.mark.parametrize("preset", PUBLIC)
def test_public_presets_use_https_everywhere(preset):
    for url in [*urls(preset), preset.docs_url]:
        assert url.startswith("https://"), url
        assert "@" not in urlsplit(url).netloc and "#" not in url


@pytest.mark.parametrize("preset", SHIPPED)
def test_grant_types_and_auth_method_are_valid(preset):
    assert preset.grant_types
    assert set(preset.grant_types) <= set(GrantType.values)
    assert len(set(preset.grant_types)) == len(preset.grant_types)
    assert preset.client_auth_method in ClientAuthMethod.values
    assert preset.scope_separator in (" ", ",")
    assert preset.docs_url and preset.api_base_url.endswith("/") and preset.test_path
    assert not preset.test_path.startswith("/")


@pytest.mark.parametrize("preset", SHIPPED)
def test_pkce_presets_list_s256_and_the_pkce_grant(preset):
    fields = resolved(preset).provider_fields()
    if preset.pkce:
        assert fields["code_challenge_methods"] == ["S256"]
        assert GrantType.AUTHORIZATION_CODE_PKCE in preset.grant_types
    else:
        assert fields["code_challenge_methods"] == []
        assert GrantType.AUTHORIZATION_CODE_PKCE not in preset.grant_types


def test_known_provider_quirks():
    assert get_preset("slack").scope_separator == ","
    assert get_preset("github").scope_separator == " "
    assert get_preset("github").test_path == "user"
    google = get_preset("google").extra_authorize_params
    assert google == {"access_type": "offline", "prompt": "consent"}
    assert get_preset("dropbox").extra_authorize_params == {"token_access_type": "offline"}
    assert get_preset("microsoft").parameters == ("tenant",)
    assert get_preset("zendesk").parameters == ("subdomain",)
    assert get_preset("atlassian").parameters == ()


# --- templated presets ---------------------------------------------------------------------------


@pytest.mark.parametrize("preset", TEMPLATED)
def test_templated_presets_refuse_unresolved_use(preset):
    with pytest.raises(ValueError, match=r"template: call resolve\("):
        preset.provider_fields()
    with pytest.raises(ValueError, match="template"):
        preset.connection_defaults()


@pytest.mark.parametrize("preset", REQUIRED)
def test_resolve_names_a_missing_parameter(preset):
    name = preset.parameters[0]
    with pytest.raises(ValueError, match=f"needs the '{name}' parameter"):
        preset.resolve()
    with pytest.raises(ValueError, match=f"needs the '{name}' parameter"):
        preset.resolve(**{name: ""})


@pytest.mark.parametrize("value", HOSTILE_VALUES)
@pytest.mark.parametrize("preset", TEMPLATED)
def test_resolve_refuses_hostile_values(preset, value):
    name = preset.parameters[0]
    with pytest.raises(ValueError, match=f"'{name}' parameter"):
        preset.resolve(**{name: value})


@pytest.mark.parametrize("preset", SHIPPED)
def test_resolve_fills_every_placeholder(preset):
    result = resolved(preset)
    fields = result.provider_fields()
    text = json.dumps([fields, result.connection_defaults()])
    assert not re.search(r"\{[A-Za-z_][A-Za-z0-9_]*\}", text), text
    for field in (*URL_FIELDS, "test_path"):
        assert "{" not in GRANT_FIELD.sub("", getattr(result, field))
    assert result.pending_parameters == ()
    assert dict(result.values) == {n: SAMPLE_VALUES[n] for n in preset.parameters}
    assert fields["metadata"]["parameters"] == dict(result.values)


def test_resolve_puts_values_where_the_template_says():
    okta = get_preset("okta").resolve(domain="Dev-123.Okta.com")
    assert okta.authorization_endpoint == "https://dev-123.okta.com/oauth2/default/v1/authorize"
    assert okta.issuer == "https://dev-123.okta.com/oauth2/default"
    zendesk = get_preset("zendesk").resolve(subdomain="acme")
    assert zendesk.api_base_url == "https://acme.zendesk.com/api/v2/"
    entra = get_preset("microsoft").resolve(tenant="organizations")
    assert entra.token_endpoint.endswith("/organizations/oauth2/v2.0/token")


def test_a_parameter_default_applies_when_left_out():
    salesforce = get_preset("salesforce").resolve()
    assert salesforce.token_endpoint == "https://login.salesforce.com/services/oauth2/token"
    sandbox = get_preset("salesforce").resolve(domain="test.salesforce.com")
    assert sandbox.issuer == "https://test.salesforce.com"


def test_resolve_refuses_unknown_and_already_filled_parameters():
    with pytest.raises(ValueError, match="no parameter 'domain'"):
        get_preset("microsoft").resolve(domain="example.com")
    with pytest.raises(ValueError, match="no parameter 'tenant'"):
        get_preset("github").resolve(tenant="x")
    entra = get_preset("microsoft").resolve(tenant="common")
    assert entra.resolve() is entra
    with pytest.raises(ValueError, match="no parameter 'tenant'"):
        entra.resolve(tenant="evil")


def test_resolve_leaves_the_registered_preset_alone():
    okta = get_preset("okta")
    okta.resolve(domain="example.okta.com")
    assert okta.pending_parameters == ("domain",)
    assert "{domain}" in get_preset("okta").token_endpoint


@pytest.mark.parametrize(
    "base, origin",
    [
        ("http://localhost:8000", "http://localhost:8000"),
        ("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("https://Demo.Example.com", "https://demo.example.com"),
    ],
)
def test_demo_base_accepts_a_loopback_or_https_origin(base, origin):
    demo = get_preset("demo").resolve(base=base)
    assert demo.token_endpoint == f"{origin}/demo-oauth/token/"
    assert demo.api_base_url == f"{origin}/demo-api/"
    assert demo.provider_fields()["metadata"]["test_path"] == "me/"


@pytest.mark.parametrize(
    "base",
    [
        "http://evil.example",
        "http://localhost:8000/x",
        "http://user@localhost:8000",
        "http://localhost:8000?x=1",
        "http://localhost:8000#x",
        "http://localhost:99999",
        "ftp://localhost",
        "javascript:alert(1)",
        "localhost:8000",
        "https://10.0.0.1",
        "http://localhost :8000",
    ],
)
def test_demo_base_refuses_anything_else(base):
    with pytest.raises(ValueError, match="'base' parameter"):
        get_preset("demo").resolve(base=base)


# --- validators ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["login.salesforce.com", "dev-123.okta.com", "a.b.c.example"])
def test_host_name_accepts_host_names(value):
    assert host_name(value.upper()) == value


@pytest.mark.parametrize(
    "value", ["localhost", "1.2.3.4", "-a.example", "a-.example", "a..example", "a_b.example"]
)
def test_host_name_refuses_non_host_names(value):
    with pytest.raises(ValueError):
        host_name(value)


def test_dns_label_and_path_segment():
    assert dns_label("Acme-1") == "acme-1"
    assert path_segment("7a1f-0b.c_d~e") == "7a1f-0b.c_d~e"
    for value in ["a.b", "-a", "a" * 64]:
        with pytest.raises(ValueError):
            dns_label(value)
    for value in ["%2F", "a%2Fb", "a{b}", ".hidden"]:
        with pytest.raises(ValueError):
            path_segment(value)
    assert local_origin("http://localhost:8000/") == "http://localhost:8000"


# --- the Preset record checks itself -------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"key": "Not A Slug"}, "key must be a slug"),
        ({"grant_types": ("implicit",)}, "grant_types"),
        ({"grant_types": ()}, "grant_types"),
        ({"client_auth_method": "client_secret_jwt"}, "client_auth_method"),
        ({"pkce": True}, "authorization_code_pkce"),
        ({"grant_types": ("authorization_code_pkce",)}, "authorization_code_pkce"),
        ({"scope_separator": ";"}, "scope_separator"),
        ({"token_endpoint": "http://acme.example/token"}, "token_endpoint must be an https"),
        ({"token_endpoint": "https://user@acme.example/token"}, "token_endpoint"),
        ({"token_endpoint": "https://{host}/token"}, "placeholders"),
        ({"parameters": ("tenant",)}, "placeholders"),
        ({"token_endpoint": "{base}/token", "parameters": ("base",)}, "no validator"),
        ({"token_endpoint": "https://acme.example/{x/token"}, "stray"),
        ({"api_base_url": "https://api.acme.example"}, "must end with '/'"),
        ({"test_path": "/me"}, "relative"),
        ({"test_method": "DELETE"}, "test_method"),
        ({"validators": {"tenant": path_segment}}, "undeclared parameters"),
    ],
)
def test_a_malformed_preset_fails_on_construction(overrides, message):
    with pytest.raises(ValueError, match=message):
        minimal(**overrides)


def test_presets_are_immutable():
    google = get_preset("google")
    with pytest.raises(dataclasses.FrozenInstanceError):
        google.token_endpoint = "https://evil.example/token"
    with pytest.raises(TypeError):
        google.extra_authorize_params["prompt"] = "none"
    fields = google.provider_fields()
    fields["metadata"]["extra_authorize_params"]["prompt"] = "none"
    fields["metadata"]["default_scopes"].append("x")
    assert google.extra_authorize_params["prompt"] == "consent"
    assert "x" not in google.default_scopes


# --- the registry --------------------------------------------------------------------------------


def test_get_preset_and_its_error():
    assert get_preset("github").name == "GitHub"
    with pytest.raises(KeyError, match="No provider preset 'nope'; known presets: .*github"):
        get_preset("nope")


def test_preset_choices_are_sorted_by_name():
    choices = preset_choices()
    assert ("github", "GitHub") in choices
    names = [name for _, name in choices]
    assert names == sorted(names, key=str.casefold)
    assert {key for key, _ in choices} == set(PRESETS)


def test_register_adds_a_preset_and_refuses_a_duplicate(monkeypatch):
    monkeypatch.setattr(registry, "PRESETS", dict(PRESETS))
    acme = minimal()
    assert register(acme) is acme
    assert get_preset("acme") is acme
    assert ("acme", "Acme") in preset_choices()
    with pytest.raises(ValueError, match="already registered"):
        register(minimal(name="Acme again"))
    replacement = minimal(name="Acme again")
    register(replacement, replace=True)
    assert get_preset("acme") is replacement
    with pytest.raises(TypeError):
        register({"key": "dict"})
    assert "acme" not in PRESETS  # the real registry is untouched


# --- into the database ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("preset", SHIPPED)
def test_provider_fields_round_trip_through_the_model(preset):
    fields = resolved(preset).provider_fields()
    provider = Provider(**fields)
    provider.full_clean()
    provider.save()
    stored = Provider.objects.get(pk=provider.pk)
    for name, value in fields.items():
        assert getattr(stored, name) == value, name
    assert stored.preset == preset.key


@pytest.mark.django_db
def test_connection_defaults_make_a_connection():
    preset = get_preset("github")
    provider = Provider.objects.create(**preset.provider_fields())
    connection = Connection.objects.create(
        slug="gh", name="GitHub", provider=provider, client_id="id", **preset.connection_defaults()
    )
    connection.refresh_from_db()
    assert connection.grant_type == GrantType.AUTHORIZATION_CODE_PKCE
    assert connection.client_auth_method == ClientAuthMethod.CLIENT_SECRET_POST
    assert connection.api_base_url == "https://api.github.com/"
    assert connection.test_path == "user"
    slack = Provider.objects.create(**get_preset("slack").provider_fields())
    connection.provider = slack
    connection.scopes = get_preset("slack").connection_defaults()["scopes"]
    assert connection.scope_string == "channels:read,chat:write"

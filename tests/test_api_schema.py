"""The OpenAPI 3 schema of the API is generated without warnings and is valid (CI gate)."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from drf_spectacular.drainage import reset_generator_stats
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

SECRET_FIELDS = {"client_secret", "private_key"}
TOKEN_FIELDS = {"access_token", "refresh_token", "id_token"}


@pytest.fixture
def schema(tmp_path) -> dict:
    """What CI runs: ``manage.py spectacular --validate --fail-on-warn`` (raises on either)."""
    reset_generator_stats()
    path = tmp_path / "schema.json"
    call_command(
        "spectacular", validate=True, fail_on_warn=True, format="openapi-json", file=str(path)
    )
    return json.loads(path.read_text())


def test_schema_is_valid_openapi_3(schema):
    assert schema["openapi"].startswith("3.")
    assert "/api/oauthconn/connections/{id}/authorize/" in schema["paths"]
    assert "/api/oauthconn/me/connections/{slug}/connect/" in schema["paths"]


def test_secrets_are_write_only_and_tokens_absent_from_every_component(schema):
    for name, component in schema["components"]["schemas"].items():
        properties = component.get("properties", {})
        assert not TOKEN_FIELDS & set(properties), name
        for field in SECRET_FIELDS & set(properties):
            assert properties[field].get("writeOnly") is True, (name, field)


def test_errors_are_documented_with_a_code(schema):
    responses = schema["paths"]["/api/oauthconn/connections/{id}/refresh/"]["post"]["responses"]
    assert {"200", "400", "403", "404", "409", "502", "503"} <= set(responses)
    error = schema["components"]["schemas"]["Error"]
    assert error["required"] == ["code", "detail"]


def test_the_demo_site_serves_the_schema(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert "/api/oauthconn/providers/" in response.json()["paths"]
    assert APIClient().get("/api/docs/").status_code == 200

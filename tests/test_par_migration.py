"""Migration 0014 fills the new endpoints of already discovered providers from their snapshot,
so their next metadata refresh is not refused as "moving endpoints" (R5)."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from oauthconn.flows.discovery import moved_endpoints
from oauthconn.models import Provider

migration = importlib.import_module("oauthconn.migrations.0014_par_and_registration")


@pytest.mark.django_db
def test_endpoints_in_the_discovery_snapshot_are_filled_in():
    snapshot = {
        "issuer": "https://as.example",
        "pushed_authorization_request_endpoint": "https://as.example/par",
        "registration_endpoint": "javascript:alert(1)",  # never validated: not copied
        "require_pushed_authorization_requests": True,
    }
    old = Provider.objects.create(
        slug="old", name="Old", issuer="https://as.example", metadata=snapshot
    )
    untouched = Provider.objects.create(
        slug="typed", name="Typed", token_endpoint="https://t.example/t"
    )

    migration.fill_from_metadata(apps, None)

    old.refresh_from_db()
    assert old.pushed_authorization_request_endpoint == "https://as.example/par"
    assert old.requires_par is True and old.registration_endpoint == ""
    fields = {"pushed_authorization_request_endpoint": "https://as.example/par"}
    assert moved_endpoints(old, fields) == []
    untouched.refresh_from_db()
    assert untouched.pushed_authorization_request_endpoint == "" and not untouched.requires_par

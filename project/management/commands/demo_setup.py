"""Seed the demo: an admin, a provider user, a local authorization server and three connections."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.urls import reverse
from oauth2_provider.models import Application

from oauthconn.conf import oauthconn_settings
from oauthconn.models import ClientAuthMethod, Connection, GrantType, Provider
from oauthconn.presets import get_preset

#: The slug the README's tour gives the connection made in the wizard.
WIZARD_SLUG = "my-api"


class Command(BaseCommand):
    help = "Create or reset the demo data and print the logins."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--site-url", default="http://127.0.0.1:8000")
        # The provider lives in the same process under another host name, so its login
        # session and the admin's are separate cookies, as with a real provider.
        parser.add_argument("--provider-url", default="http://localhost:8000")

    def handle(self, *args, site_url: str, provider_url: str, **options) -> None:
        admin_password = reset_user("admin", superuser=True)
        alice_password = reset_user("alice")
        provider = upsert_provider(provider_url.rstrip("/"))
        shared = upsert_connection("demo", "Demo API (shared)", provider, per_user=False)
        personal = upsert_connection(
            "demo-personal", "Demo API (per user)", provider, per_user=True
        )
        service = upsert_connection(
            "demo-service",
            "Demo API (client credentials)",
            provider,
            per_user=False,
            grant_type=GrantType.CLIENT_CREDENTIALS,
        )
        link("oauthconn-demo", [shared, personal], Application.GRANT_AUTHORIZATION_CODE)
        link("oauthconn-demo-service", [service], Application.GRANT_CLIENT_CREDENTIALS)
        # A client for the tour's own wizard-made connection (slug WIZARD_SLUG).
        wizard_secret = register_client(
            "oauthconn-wizard", [callback_url(WIZARD_SLUG)], Application.GRANT_AUTHORIZATION_CODE
        )
        self.stdout.write(
            self.style.SUCCESS(
                "\n  oauthconn demo is ready\n"
                f"  Site:               {site_url}/\n"
                f"  Admin:              {site_url}/admin/   user admin / {admin_password}\n"
                f"  Provider login:     user alice / {alice_password}  (at {provider_url})\n"
                f"  Your connections:   {site_url}/oauthconn/\n"
                f"  For the wizard:     slug {WIZARD_SLUG}, preset 'Demo authorization server' "
                f"with base {provider_url},\n"
                f"                      client id oauthconn-wizard, client secret {wizard_secret}\n"
            )
        )


def reset_user(username: str, *, superuser: bool = False) -> str:
    password = secrets.token_urlsafe(9)
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.is_staff = user.is_superuser = superuser
    user.set_password(password)
    user.save()
    return password


def upsert_provider(base: str) -> Provider:
    fields = get_preset("demo").resolve(base=base).provider_fields()
    provider, _ = Provider.objects.update_or_create(slug=fields.pop("slug"), defaults=fields)
    return provider


def upsert_connection(
    slug, name, provider, *, per_user, grant_type=GrantType.AUTHORIZATION_CODE_PKCE
):
    connection, _ = Connection.objects.update_or_create(
        slug=slug,
        defaults={
            "name": name,
            "provider": provider,
            "grant_type": grant_type,
            "client_id": f"oauthconn-{slug}",
            "client_auth_method": ClientAuthMethod.CLIENT_SECRET_BASIC,
            "scopes": "read write",
            "api_base_url": provider.metadata["api_base_url"],
            "per_user": per_user,
            "test_path": "me/",
        },
    )
    return connection


def link(client_id: str, connections, grant_type) -> None:
    """Register one client at the demo server and give its credentials to the connections."""
    secret = register_client(client_id, [c.redirect_uri for c in connections], grant_type)
    for connection in connections:
        connection.client_id = client_id
        connection.client_secret = secret
        connection.save()


def register_client(client_id: str, redirect_uris: list[str], grant_type) -> str:
    """(Re)create a confidential client at the demo server; return its new secret."""
    secret = secrets.token_urlsafe(32)
    Application.objects.filter(client_id=client_id).delete()
    Application.objects.create(
        name=client_id,
        client_id=client_id,
        client_secret=secret,  # hashed by django-oauth-toolkit on save
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=grant_type,
        redirect_uris=" ".join(redirect_uris),
        algorithm="",
    )
    return secret


def callback_url(slug: str) -> str:
    """The redirect URI a connection with ``slug`` will have (see Connection.redirect_uri)."""
    base = oauthconn_settings.REDIRECT_BASE_URL.rstrip("/")
    return base + reverse("oauthconn:callback", args=[slug])

"""Seed the demo: an admin, a provider user, a local authorization server and three connections.

Safe to run on every start: the passwords and client secrets are made once and kept in the
git-ignored ``.local/`` (project/devkeys.py), so the same logins are printed each time, and the
demo server's clients are updated in place, so grants made earlier (the tour's wizard-made
connection included) keep refreshing.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password
from django.core.management.base import BaseCommand
from django.urls import reverse
from oauth2_provider.models import Application

from oauthconn.conf import oauthconn_settings
from oauthconn.models import ClientAuthMethod, Connection, GrantType, Provider
from oauthconn.presets import get_preset
from project.devkeys import development_credentials

#: The slug the README's tour gives the connection made in the wizard.
WIZARD_SLUG = "my-api"
#: The demo server's clients: the seeded connections' two, and the one for the tour's wizard.
SHARED_CLIENT, SERVICE_CLIENT, WIZARD_CLIENT = (
    "oauthconn-demo",
    "oauthconn-demo-service",
    "oauthconn-wizard",
)


class Command(BaseCommand):
    help = "Create or update the demo data and print the logins (the same on every run)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--site-url", default="http://127.0.0.1:8000")
        # The provider lives in the same process under another host name, so its login
        # session and the admin's are separate cookies, as with a real provider.
        parser.add_argument("--provider-url", default="http://localhost:8000")

    def handle(self, *args, site_url: str, provider_url: str, **options) -> None:
        names = ["admin", "alice", SHARED_CLIENT, SERVICE_CLIENT, WIZARD_CLIENT]
        secret = development_credentials(settings.DEMO_LOCAL_DIR, names)
        seed(secret, provider_url.rstrip("/"))
        self.stdout.write(
            self.style.SUCCESS(
                "\n  oauthconn demo is ready\n"
                f"  Site:               {site_url}/\n"
                f"  Admin:              {site_url}/admin/   user admin / {secret['admin']}\n"
                f"  Provider login:     user alice / {secret['alice']}  (at {provider_url})\n"
                f"  Your connections:   {site_url}/oauthconn/\n"
                f"  For the wizard:     slug {WIZARD_SLUG}, preset 'Demo authorization server' "
                f"with base {provider_url},\n"
                f"                      client id {WIZARD_CLIENT}, "
                f"client secret {secret[WIZARD_CLIENT]}\n"
            )
        )


def seed(secret: dict[str, str], provider_url: str) -> None:
    """Create or update the users, the demo server's clients and the seeded connections."""
    ensure_user("admin", secret["admin"], superuser=True)
    ensure_user("alice", secret["alice"])
    provider = upsert_provider(provider_url)
    shared = upsert_connection("demo", "Demo API (shared)", provider, per_user=False)
    personal = upsert_connection("demo-personal", "Demo API (per user)", provider, per_user=True)
    service = upsert_connection(
        "demo-service",
        "Demo API (client credentials)",
        provider,
        per_user=False,
        grant_type=GrantType.CLIENT_CREDENTIALS,
    )
    link(SHARED_CLIENT, secret[SHARED_CLIENT], [shared, personal])
    link(SERVICE_CLIENT, secret[SERVICE_CLIENT], [service])
    # A client for the tour's own wizard-made connection (slug WIZARD_SLUG).
    ensure_client(
        WIZARD_CLIENT,
        secret[WIZARD_CLIENT],
        [callback_url(WIZARD_SLUG)],
        Application.GRANT_AUTHORIZATION_CODE,
    )


def ensure_user(username: str, password: str, *, superuser: bool = False) -> None:
    """Create the user, or give it back the kept password if it was changed."""
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.is_staff = user.is_superuser = superuser
    if not user.check_password(password):
        user.set_password(password)
    user.save()


def upsert_provider(base: str) -> Provider:
    fields = get_preset("demo").resolve(base=base).provider_fields()
    provider, _ = Provider.objects.update_or_create(slug=fields.pop("slug"), defaults=fields)
    return provider


def upsert_connection(
    slug, name, provider, *, per_user, grant_type=GrantType.AUTHORIZATION_CODE_PKCE
) -> Connection:
    connection, _ = Connection.objects.update_or_create(
        slug=slug,
        defaults={
            "name": name,
            "provider": provider,
            "grant_type": grant_type,
            "client_auth_method": ClientAuthMethod.CLIENT_SECRET_BASIC,
            "scopes": "read write",
            "api_base_url": provider.metadata["api_base_url"],
            "per_user": per_user,
            "test_path": "me/",
        },
    )
    return connection


def link(client_id: str, secret: str, connections: list[Connection]) -> None:
    """Register one client at the demo server and give its credentials to the connections."""
    grant_type = (
        Application.GRANT_CLIENT_CREDENTIALS
        if connections[0].grant_type == GrantType.CLIENT_CREDENTIALS
        else Application.GRANT_AUTHORIZATION_CODE
    )
    ensure_client(client_id, secret, [c.redirect_uri for c in connections], grant_type)
    for connection in connections:
        connection.client_id = client_id
        connection.client_secret = secret
        connection.save()


def ensure_client(client_id: str, secret: str, redirect_uris: list[str], grant_type) -> None:
    """Create or update a confidential client at the demo server, keeping its row.

    Deleting and recreating the row would delete its grants with it (django-oauth-toolkit
    cascades), and a new secret would break connections holding the old one.
    """
    client = Application.objects.filter(client_id=client_id).first() or Application(
        client_id=client_id, name=client_id, algorithm=""
    )
    client.client_type = Application.CLIENT_CONFIDENTIAL
    client.authorization_grant_type = grant_type
    client.redirect_uris = " ".join(redirect_uris)
    if not client.client_secret or not check_password(secret, client.client_secret):
        client.client_secret = secret  # hashed by django-oauth-toolkit on save
    client.save()


def callback_url(slug: str) -> str:
    """The redirect URI a connection with ``slug`` will have (see Connection.redirect_uri)."""
    base = oauthconn_settings.REDIRECT_BASE_URL.rstrip("/")
    return base + reverse("oauthconn:callback", args=[slug])

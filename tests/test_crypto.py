"""Encryption at rest, key rotation and the system checks."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection as db_connection
from django.utils import timezone

from oauthconn.checks import (
    check_deployment_safety,
    check_encryption_keys,
    check_redirect_base_url,
    check_unknown_settings,
)
from oauthconn.crypto import Sealed
from oauthconn.exceptions import DecryptionFailed, NotConnected
from oauthconn.management.commands.oauthconn_rotate_keys import models_with_secrets
from oauthconn.models import Connection, PendingRevocation, Provider, Token


@pytest.fixture
def keys(settings):
    def use(*new_keys):
        settings.OAUTHCONN = {**settings.OAUTHCONN, "ENCRYPTION_KEYS": list(new_keys)}

    return use


@pytest.fixture
def connection(db):
    provider = Provider.objects.create(slug="p", name="P", token_endpoint="https://as.example/t")
    return Connection.objects.create(
        slug="c", name="C", provider=provider, client_id="id", client_secret="the-secret"
    )


def stored(table: str, column: str) -> str:
    with db_connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table}")
        return cursor.fetchone()[0]


def test_secrets_are_stored_encrypted_and_revealed_on_demand(connection):
    assert "the-secret" not in stored("oauthconn_connection", "client_secret")
    loaded = Connection.objects.get(pk=connection.pk)
    assert str(loaded.client_secret) == "***" and "the-secret" not in repr(loaded.client_secret)
    assert loaded.client_secret.reveal() == "the-secret"


def test_rotation_re_encrypts_with_the_newest_key(connection, keys, settings):
    old_key = settings.OAUTHCONN["ENCRYPTION_KEYS"][0]
    Token.objects.create(connection=connection, access_token="at", refresh_token="rt")
    new_key = Fernet.generate_key().decode()
    keys(new_key, old_key)

    call_command("oauthconn_rotate_keys")

    keys(new_key)  # the old key is gone; everything still reads
    assert Connection.objects.get().client_secret.reveal() == "the-secret"
    token = Token.objects.get()
    assert (token.access_token.reveal(), token.refresh_token.reveal()) == ("at", "rt")


def test_rotation_covers_every_model_that_holds_a_secret(connection, keys, settings):
    """A pending revocation (and any model added later) is re-encrypted too: after the old
    key is removed, its value must still read."""
    old_key = settings.OAUTHCONN["ENCRYPTION_KEYS"][0]
    PendingRevocation.objects.create(
        connection=connection,
        value="rt-to-revoke",
        token_type_hint="refresh_token",
        endpoint="https://as.example/revoke",
        next_attempt_at=timezone.now(),
    )
    new_key = Fernet.generate_key().decode()
    keys(new_key, old_key)

    call_command("oauthconn_rotate_keys")

    keys(new_key)
    assert PendingRevocation.objects.get().value.reveal() == "rt-to-revoke"
    secret_models = {model.__name__ for model in models_with_secrets()}
    assert {"Connection", "Token", "PendingAuthorization", "PendingRevocation"} <= secret_models


def test_rotation_reports_values_no_key_can_decrypt(connection, keys):
    keys(Fernet.generate_key().decode())
    with pytest.raises(CommandError, match="cannot be decrypted"):
        call_command("oauthconn_rotate_keys")


def test_undecryptable_value_fails_only_where_used(connection, keys):
    keys(Fernet.generate_key().decode())
    loaded = Connection.objects.get()  # loading does not decrypt
    with pytest.raises(DecryptionFailed):
        loaded.client_secret.reveal()


def test_sealed_values_compare_by_plaintext():
    assert Sealed.seal("a") == Sealed.seal("a")
    assert Sealed.seal("a") != Sealed.seal("b")


def test_an_unset_secret_reveals_as_none_and_a_set_one_as_its_plaintext(connection):
    loaded = Connection.objects.get(pk=connection.pk)
    assert Sealed.reveal_optional(loaded.client_secret) == "the-secret"
    assert Sealed.reveal_optional(loaded.private_key) is None


def test_a_deferred_secret_is_read_when_used_not_taken_for_unset(connection):
    Token.objects.create(connection=connection, access_token="at", refresh_token=None)
    token = Token.objects.defer("access_token", "refresh_token").get()
    assert token.get_deferred_fields() == {"access_token", "refresh_token"}
    assert token.access_token.reveal() == "at"
    assert token.refresh_token is None
    assert Connection.objects.only("pk").get().client_secret.reveal() == "the-secret"


def test_missing_and_malformed_keys_are_check_errors(keys):
    keys()
    assert [m.id for m in check_encryption_keys()] == ["oauthconn.E001"]
    keys("not-a-fernet-key")
    assert check_encryption_keys() == [
        checks.Error(
            "OAUTHCONN['ENCRYPTION_KEYS'] holds a malformed key.",
            hint="Each key must be a 32-byte url-safe base64 Fernet key.",
            id="oauthconn.E002",
        )
    ]


def test_unknown_setting_is_a_check_error(settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "STATE_LIFTIME": 5}
    (message,) = check_unknown_settings()
    assert message.id == "oauthconn.E003"
    assert message.msg == "Unknown key(s) in OAUTHCONN: STATE_LIFTIME."


def test_redirect_base_url_must_be_https(settings):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REDIRECT_BASE_URL": "http://example.com"}
    assert [m.id for m in check_redirect_base_url()] == ["oauthconn.E005"]
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REDIRECT_BASE_URL": ""}
    assert [m.id for m in check_redirect_base_url()] == ["oauthconn.E004"]
    settings.OAUTHCONN = {**settings.OAUTHCONN, "REDIRECT_BASE_URL": "https://example.com"}
    assert check_redirect_base_url() == []


def test_deployment_warnings(settings):
    settings.DEBUG = False
    settings.SESSION_COOKIE_SAMESITE = "Strict"
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    ids = [m.id for m in check_deployment_safety()]
    assert ids == ["oauthconn.W001", "oauthconn.W002", "oauthconn.W003"]
    settings.OAUTHCONN = {**settings.OAUTHCONN, "ALLOW_INSECURE_LOOPBACK": False}
    settings.SESSION_COOKIE_SAMESITE = "Lax"
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    assert check_deployment_safety() == []


def test_a_grant_without_an_access_token_is_not_connected(connection):
    token = Token.objects.create(connection=connection, access_token="at")
    assert token.require_access_token().reveal() == "at"
    token.access_token = None
    with pytest.raises(NotConnected):
        token.require_access_token()

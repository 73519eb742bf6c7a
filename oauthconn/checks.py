"""System checks with stable ids: ``oauthconn.E001``… for errors, ``oauthconn.W001``… warnings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core import checks

from oauthconn.conf import DEFAULTS, user_settings
from oauthconn.exceptions import EncryptionKeyError, InsecureURL


def check_encryption_keys(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    from oauthconn.crypto import keyring

    if not user_settings().get("ENCRYPTION_KEYS"):
        return [
            checks.Error(
                "OAUTHCONN['ENCRYPTION_KEYS'] is not set; secrets and tokens cannot be stored.",
                hint='Generate a key with `python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"` and put it first in the list.',
                id="oauthconn.E001",
            )
        ]
    try:
        keyring()
    except EncryptionKeyError:
        return [
            checks.Error(
                "OAUTHCONN['ENCRYPTION_KEYS'] holds a malformed key.",
                hint="Each key must be a 32-byte url-safe base64 Fernet key.",
                id="oauthconn.E002",
            )
        ]
    return []


def check_unknown_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    unknown = sorted(set(user_settings()) - set(DEFAULTS))
    if not unknown:
        return []
    return [
        checks.Error(
            f"Unknown key(s) in OAUTHCONN: {', '.join(unknown)}.",
            hint=f"Known keys: {', '.join(sorted(DEFAULTS))}.",
            id="oauthconn.E003",
        )
    ]


#: E005's hints: a development origin on this machine is fixed by one setting, any other by https.
LOOPBACK_HINT = (
    "For local development on this machine set OAUTHCONN['ALLOW_INSECURE_LOOPBACK'] = True: "
    "it allows http for 127.0.0.1, [::1] and localhost (warning W001 while DEBUG is off). "
    "In production use this site's public https origin."
)
HTTPS_HINT = (
    "Set OAUTHCONN['REDIRECT_BASE_URL'] to this site's public https origin, e.g. "
    "https://www.example.com. Plain http is only possible for 127.0.0.1, [::1] or localhost "
    "with OAUTHCONN['ALLOW_INSECURE_LOOPBACK'] = True (development)."
)


def check_redirect_base_url(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    from oauthconn.http import check_url

    base = user_settings().get("REDIRECT_BASE_URL", "")
    if not base:
        return [
            checks.Error(
                "OAUTHCONN['REDIRECT_BASE_URL'] is not set; redirect URIs are built from it.",
                hint="Set OAUTHCONN['REDIRECT_BASE_URL'] to this site's public https origin.",
                id="oauthconn.E004",
            )
        ]
    try:
        check_url(base, field="REDIRECT_BASE_URL")
    except InsecureURL as err:
        return [
            checks.Error(
                f"OAUTHCONN['REDIRECT_BASE_URL'] = {base!r} is refused: {err}",
                hint=LOOPBACK_HINT if _is_loopback_http(base) else HTTPS_HINT,
                id="oauthconn.E005",
            )
        ]
    return []


def _is_loopback_http(url: str) -> bool:
    from oauthconn.http.policy import is_loopback_host

    parts = urlsplit(url)
    return parts.scheme == "http" and is_loopback_host(parts.hostname or "")


def check_deployment_safety(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    if user_settings().get("ALLOW_INSECURE_LOOPBACK") and not settings.DEBUG:
        messages.append(
            checks.Warning(
                "OAUTHCONN['ALLOW_INSECURE_LOOPBACK'] is on while DEBUG is off.",
                hint="It allows plain http and loopback destinations; turn it off in production.",
                id="oauthconn.W001",
            )
        )
    if getattr(settings, "SESSION_COOKIE_SAMESITE", "Lax") == "Strict":
        messages.append(
            checks.Warning(
                "SESSION_COOKIE_SAMESITE is 'Strict': browsers drop the session cookie on the "
                "provider's redirect back, so every authorization callback fails.",
                hint="Use 'Lax' (Django's default).",
                id="oauthconn.W002",
            )
        )
    if settings.SESSION_ENGINE == "django.contrib.sessions.backends.signed_cookies":
        messages.append(
            checks.Warning(
                "SESSION_ENGINE stores sessions in signed cookies that the browser can read.",
                hint="oauthconn keeps flow secrets server-side, but the wizard's session data "
                "is readable there; use a server-side session engine.",
                id="oauthconn.W003",
            )
        )
    return messages


def check_change_feed(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """W004: LISTEN_FOR_CHANGES hears PostgreSQL through psycopg 3 only."""
    from django.db import connections, router

    from oauthconn.flows.change_feed import can_listen
    from oauthconn.models import Token

    if not user_settings().get("LISTEN_FOR_CHANGES"):
        return []
    alias = router.db_for_read(Token)  # the database get_connection() reads
    if can_listen(connections[alias]):
        return []
    return [
        checks.Warning(
            f"OAUTHCONN['LISTEN_FOR_CHANGES'] is on, but the database {alias!r} cannot "
            "notify it: get_connection() asks that database whether a row changed on every "
            "call, as without the setting.",
            hint="It needs PostgreSQL through psycopg 3.",
            id="oauthconn.W004",
        )
    ]


def check_owner_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E012: per-owner grants (docs/owners.md) need an installed model and a resolver."""
    from django.utils.module_loading import import_string

    from oauthconn.exceptions import ConfigurationError
    from oauthconn.models.owners import owner_model

    try:
        if owner_model() is None:
            return []
    except ConfigurationError as err:
        return [_owner_error(str(err), 'Name a model as "app_label.ModelName".')]
    path = user_settings().get("OWNER_RESOLVER")
    hint = "Name a callable (user) -> the owners that user may act for, as an import string."
    if not path:
        return [_owner_error('OAUTHCONN["OWNER_MODEL"] is set but OWNER_RESOLVER is not.', hint)]
    try:
        import_string(path)
    except ImportError as err:
        return [_owner_error(f'OAUTHCONN["OWNER_RESOLVER"] = {path!r}: {err}', hint)]
    return []


def _owner_error(message: str, hint: str) -> checks.CheckMessage:
    return checks.Error(message, hint=hint, id="oauthconn.E012")


def register() -> None:
    for check in (
        check_encryption_keys,
        check_unknown_settings,
        check_redirect_base_url,
        check_deployment_safety,
        check_owner_settings,
        check_change_feed,
    ):
        checks.register(check, "oauthconn")

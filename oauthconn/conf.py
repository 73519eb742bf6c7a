"""Settings: one ``OAUTHCONN`` dict, read at call time.

``oauthconn_settings.NAME`` looks the key up in ``settings.OAUTHCONN`` on every access, falling
back to ``DEFAULTS``, so pytest-django's ``settings`` fixture and ``override_settings`` just
work. Unknown keys are reported by the system check ``oauthconn.E003``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from oauthconn import __version__

DEFAULTS: dict[str, Any] = {
    # Fernet keys, newest first: the first encrypts, all decrypt (see "Key rotation").
    "ENCRYPTION_KEYS": [],
    # Where this site is reachable, e.g. "https://example.com": the redirect URIs are built
    # from it, never from the request's Host header (RFC 9700 §4.13).
    "REDIRECT_BASE_URL": "",
    # Seconds an authorization attempt (state, PKCE verifier) stays valid (RFC 6749 §4.1.2).
    "STATE_LIFETIME": 600,
    # Pending attempts kept per browser session; older ones are evicted (R14).
    "MAX_PENDING_FLOWS": 5,
    # Refresh an access token this many seconds before it expires.
    "REFRESH_LEEWAY": 60,
    # Lifetime assumed when a token response has no expires_in (a connection may override).
    "DEFAULT_TOKEN_LIFETIME": 3600,
    # expires_in values above this are clamped (providers have sent 10**12).
    "MAX_TOKEN_LIFETIME": 366 * 24 * 3600,
    # Outbound HTTP: timeouts in seconds, and a cap on a response's decoded size in bytes.
    "CONNECT_TIMEOUT": 5.0,
    "READ_TIMEOUT": 10.0,
    "REQUEST_DEADLINE": 30.0,
    "MAX_RESPONSE_BYTES": 1024 * 1024,
    "USER_AGENT": f"oauthconn/{__version__}",
    # A CA bundle path for private PKI; certificates are always verified.
    "CA_BUNDLE": None,
    # Development only: allow http:// and loopback destinations (127.0.0.0/8, ::1, localhost).
    "ALLOW_INSECURE_LOOPBACK": False,
    # Private destinations that the SSRF guard lets through (exact host names, CIDRs).
    "ALLOWED_PRIVATE_HOSTS": [],
    "ALLOWED_PRIVATE_NETWORKS": [],
    # Ports public hosts may be reached on (SECURITY §3.5); allowed private hosts: any port.
    "ALLOWED_PORTS": [443],
    # Seconds a caller waits for another worker's refresh before giving up.
    "LOCK_TIMEOUT": 30.0,
    # Proactive refresh (the oauthconn_refresh command and the Celery task, see
    # docs/lifecycle.md): renew access tokens that expire within this many seconds,
    "PROACTIVE_WINDOW": 900,
    # refresh tokens unused for this many days (providers expire idle ones; 0 turns it off),
    "IDLE_REFRESH_DAYS": 30,
    # and refresh tokens whose announced expiry (refresh_expires_in) is this many seconds away,
    "REFRESH_TOKEN_WINDOW": 24 * 3600,
    # with at most this many token requests in flight in all (rounded up to a multiple of
    "PROACTIVE_CONCURRENCY": 4,
    # this many processes, each running its share of the threads: more than 1 helps a run
    # whose own CPU is the bound, against a provider that answers at once; on PostgreSQL,
    # never on SQLite nor in the Celery task).
    "PROACTIVE_PROCESSES": 1,
    # PostgreSQL through psycopg 3: each process keeps a connection that LISTENs for changes
    # (migration 0024's triggers), and get_connection() serves a row it read before without
    # asking the database until one names it. A request that follows another process's write
    # by less than the notification's delivery may get the old row (docs/lifecycle.md,
    # "Listening for changes instead"). Off: every call asks whether the row changed.
    "LISTEN_FOR_CHANGES": False,
    # REST API (oauthconn.api, needs the "api" extra): permission classes as import strings,
    # resolved per request. The first list guards providers and connections (staff), the
    # second the /me/ endpoints where users manage their own per-user tokens.
    "API_PERMISSION_CLASSES": ["oauthconn.api.permissions.StaffModelPermissions"],
    "API_USER_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Items per page of the API's list endpoints.
    "API_PAGE_SIZE": 50,
    # Notifications (docs/operations.md) when a grant needs reauthorization, is revoked, or
    # has been failing for NOTIFY_FAILING_AFTER seconds (None: never for failing). E-mail
    # goes to NOTIFY_EMAILS (None: settings.ADMINS via mail_admins; []: nobody) and, when
    # NOTIFY_OWNERS, to the owner of a per-user grant (unless they caused it).
    "NOTIFY_EMAILS": None,
    "NOTIFY_OWNERS": True,
    "NOTIFY_FAILING_AFTER": 3600,
    # Signed webhooks: [{"url": "https://...", "secret": "..."}] or "secret_env": "ENV_VAR"
    # instead of "secret". Internal receivers need ALLOWED_PRIVATE_HOSTS / _NETWORKS.
    "WEBHOOKS": [],
    # Delivery attempts per notification (with backoff) before it is given up.
    "NOTIFY_MAX_ATTEMPTS": 10,
    # Grants owned by teams, organizations, tenants (docs/owners.md): the model whose
    # instances may own a per-owner connection's grants, as "app_label.ModelName" (None: only
    # shared and per-user connections), and an import string of a callable (user) -> iterable
    # of those instances the user may act for, asked on every page, start and callback.
    "OWNER_MODEL": None,
    "OWNER_RESOLVER": None,
    # Values the wizard prefills for presets' parameters, by preset and parameter, e.g.
    # {"okta": {"domain": "acme.okta.com"}} (the demo: its own server's base URL).
    "PRESET_PARAMETERS": {},
}


class OAuthConnSettings:
    """Attribute access to the ``OAUTHCONN`` dict with defaults, read at call time."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown oauthconn setting: {name!r}")
        return user_settings().get(name, DEFAULTS[name])


def user_settings() -> dict[str, Any]:
    return getattr(settings, "OAUTHCONN", None) or {}


oauthconn_settings = OAuthConnSettings()

"""Settings of the demo site: oauthconn plus a local demo authorization server.

Configured from the environment with django-environ; with nothing set it runs on SQLite at
http://127.0.0.1:8000 with a development encryption key kept in the git-ignored ``.local/``.
"""

from __future__ import annotations

from pathlib import Path

import environ

from project.devkeys import development_encryption_key, development_oidc_key

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

#: The git-ignored folder of the demo's development keys and credentials (project/devkeys.py).
DEMO_LOCAL_DIR = BASE_DIR / ".local"

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="demo-only-insecure-secret-key-do-not-deploy")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "formtools",
    "rest_framework",
    "drf_spectacular",
    "oauth2_provider",  # the demo authorization server
    "oauthconn",
    "project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
}
SPECTACULAR_SETTINGS = {"TITLE": "oauthconn API", "VERSION": "1"}

OAUTHCONN = {
    "ENCRYPTION_KEYS": env.list("OAUTHCONN_ENCRYPTION_KEYS", default=[])
    or [development_encryption_key(DEMO_LOCAL_DIR)],
    "REDIRECT_BASE_URL": env("OAUTHCONN_REDIRECT_BASE_URL", default="http://127.0.0.1:8000"),
    # The demo authorization server runs on this machine over plain http.
    "ALLOW_INSECURE_LOOPBACK": env.bool("OAUTHCONN_ALLOW_INSECURE_LOOPBACK", default=True),
    # The wizard prefills the demo preset's base URL with the demo server's (scripts/demo).
    "PRESET_PARAMETERS": {
        "demo": {"base": env("DEMO_PROVIDER_URL", default="http://localhost:8000")},
    },
}

# The demo authorization server (django-oauth-toolkit). Refresh tokens rotate, as at most
# real providers; PKCE is enforced per request when the client sends a challenge.
OAUTH2_PROVIDER = {
    "SCOPES": {"openid": "Know who you are", "read": "Read your data", "write": "Change your data"},
    "DEFAULT_SCOPES": ["read"],
    "PKCE_REQUIRED": False,
    "ROTATE_REFRESH_TOKEN": True,
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
    # OpenID Connect: discovery, RS256 ID tokens and userinfo, signed with a development key.
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": env("DEMO_OIDC_RSA_PRIVATE_KEY", default="")
    or development_oidc_key(DEMO_LOCAL_DIR),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"oauthconn": {"handlers": ["console"], "level": "INFO"}},
}

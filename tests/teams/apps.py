from django.apps import AppConfig


class TeamsConfig(AppConfig):
    """A site's own owner model for per-owner grants (OAUTHCONN["OWNER_MODEL"] in tests)."""

    name = "tests.teams"
    label = "teams"
    default_auto_field = "django.db.models.BigAutoField"

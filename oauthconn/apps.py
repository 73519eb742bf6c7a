from django.apps import AppConfig


class OAuthConnConfig(AppConfig):
    name = "oauthconn"
    verbose_name = "OAuth connections"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from oauthconn import checks, server_log

        checks.register()
        # runserver logs the callback's request line, code and state included (see module)
        server_log.install()

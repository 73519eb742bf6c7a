from django.apps import AppConfig


class OAuthConnConfig(AppConfig):
    name = "oauthconn"
    verbose_name = "OAuth connections"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from oauthconn import checks, server_log
        from oauthconn.flows import change_feed

        checks.register()
        change_feed.hear_orm_writes()
        # runserver logs the callback's request line, code and state included (see module)
        server_log.install()

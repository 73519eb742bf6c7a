"""Incremental authorization (docs/scopes.md): the scopes a connection allows to be added
later, and the scopes each authorization attempt asked for."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("oauthconn", "0010_scale_token_last_used_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="connection",
            name="optional_scopes",
            field=models.TextField(
                blank=True,
                default="",
                db_default="",
                help_text="Scopes that may be added to a grant later (Request more scopes, require_scopes()), space separated.",
            ),
        ),
        migrations.AddField(
            model_name="pendingauthorization",
            name="scope",
            field=models.TextField(blank=True),
        ),
    ]

"""Per-grant values of the API base URL's fields (issue 12): on the grant, on an attempt
(typed when connecting) and on a held account switch. The token's column has a database
default too, so raw INSERTs written before it (bulk seeding) keep working.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("oauthconn", "0015_teams_owner_key"),
    ]

    operations = [
        migrations.AddField(
            model_name="pendingauthorization",
            name="base_values",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="pendingswitch",
            name="base_values",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.AddField(
            model_name="token",
            name="base_values",
            field=models.JSONField(
                blank=True,
                db_default={},
                default=dict,
                help_text="This grant's values of the API base URL fields.",
            ),
        ),
        migrations.AlterField(
            model_name="connection",
            name="api_base_url",
            field=models.CharField(
                blank=True,
                help_text="Tokens are sent only to this origin. Per-grant fields: {token:name} from the token response, {ask:name} typed when connecting.",
                max_length=2000,
                verbose_name="API base URL",
            ),
        ),
    ]

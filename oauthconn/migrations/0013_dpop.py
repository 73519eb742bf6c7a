"""DPoP (RFC 9449): the per-connection choice and the per-grant key, encrypted like every secret."""

import oauthconn.fields
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("oauthconn", "0012_resilient_call_settings"),
    ]

    operations = [
        migrations.AddField(
            model_name="connection",
            name="use_dpop",
            field=models.BooleanField(
                db_default=False,
                default=False,
                help_text="RFC 9449: tokens are bound to a key pair kept for each grant, so a stolen token is useless without it.",
                verbose_name="DPoP-bound tokens",
            ),
        ),
        migrations.AddField(
            model_name="token",
            name="dpop_key",
            field=oauthconn.fields.EncryptedTextField(blank=True, editable=False, null=True),
        ),
    ]

"""PendingSwitch: a reauthorization by another account waits for the person to confirm it
(issue 10, defect 7b). A new table only; nothing existing changes."""

import django.db.models.deletion
import django.utils.timezone
import oauthconn.fields
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("oauthconn", "0006_core_token_lease"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="PendingSwitch",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key_hash", models.CharField(max_length=64, unique=True)),
                ("browser_hash", models.CharField(max_length=64)),
                (
                    "tokens",
                    oauthconn.fields.EncryptedTextField(blank=True, editable=False, null=True),
                ),
                ("old_subject", models.CharField(max_length=255)),
                ("old_claims", models.JSONField(blank=True, default=dict)),
                ("subject", models.CharField(max_length=255)),
                ("claims", models.JSONField(blank=True, default=dict)),
                ("return_to", models.CharField(blank=True, max_length=2000)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("expires_at", models.DateTimeField(db_index=True)),
                ("consumed_at", models.DateTimeField(blank=True, null=True)),
                (
                    "connection",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="oauthconn.connection",
                    ),
                ),
                (
                    "owner",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
    ]

"""Token.lifetime: the access token's lifetime as the provider gave it (defect 6).

Existing grants get an estimate, expiry minus when the token arrived (the last refresh or
the authorization), so a short-lived token stored before the upgrade is not refreshed on
every call until its next refresh.
"""

from django.db import migrations, models


def estimate_lifetimes(apps, schema_editor):
    Token = apps.get_model("oauthconn", "Token")
    rows = Token.objects.filter(expires_at__isnull=False).only(
        "pk", "expires_at", "refreshed_at", "authorized_at"
    )
    changed = []
    for token in rows.iterator(chunk_size=500):
        arrived = token.refreshed_at or token.authorized_at
        seconds = int((token.expires_at - arrived).total_seconds()) if arrived else 0
        if seconds > 0:
            token.lifetime = seconds
            changed.append(token)
        if len(changed) >= 500:  # a batch at a time: a large table never sits in memory
            Token.objects.bulk_update(changed, ["lifetime"])
            changed = []
    Token.objects.bulk_update(changed, ["lifetime"])


class Migration(migrations.Migration):
    dependencies = [
        ("oauthconn", "0004_operator_notification_outbox"),
    ]

    operations = [
        migrations.AddField(
            model_name="token",
            name="lifetime",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Seconds the provider said the access token lives.",
                null=True,
            ),
        ),
        migrations.RunPython(estimate_lifetimes, migrations.RunPython.noop, elidable=True),
    ]

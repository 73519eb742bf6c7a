"""Token.lease_until: SQLite's renewal lease gets its own column (issue 14).

Until now the lease was written into ``next_attempt_at``, the backoff time, so a lease looked
like a backoff (and a backoff like a lease) to every reader. A lease in flight during the
upgrade stays in ``next_attempt_at`` and is served as a backoff of at most its own length.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("oauthconn", "0005_token_lifetime"),
    ]

    operations = [
        migrations.AddField(
            model_name="token",
            name="lease_until",
            field=models.DateTimeField(
                blank=True,
                help_text="Another worker is renewing this token until then.",
                null=True,
            ),
        ),
    ]

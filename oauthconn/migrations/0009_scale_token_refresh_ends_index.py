"""Index the refresh token's announced expiry, for the due-token query's "ending" arm.

Partial (only grants with a refresh token, the only ones that arm can pick). One concurrent
index per non-atomic migration (see oauthconn.migrations._operations).
"""

from django.db import migrations, models

from oauthconn.migrations._operations import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("oauthconn", "0008_scale_connection_name_index"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="token",
            index=models.Index(
                fields=["refresh_expires_at"],
                condition=models.Q(refresh_token__isnull=False),
                name="oauthconn_token_refresh_ends",
            ),
        ),
    ]

"""Index when a refresh token was last used, for the due-token query's "idle" arm.

The arm asks for ``COALESCE(refreshed_at, authorized_at) <= idle_since`` (last refreshed, or
authorized and never refreshed), so the index is on that expression; partial like 0006. One
concurrent index per non-atomic migration (see oauthconn.migrations._operations).
"""

import django.db.models.functions.comparison
from django.db import migrations, models

from oauthconn.migrations._operations import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("oauthconn", "0009_scale_token_refresh_ends_index"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="token",
            index=models.Index(
                django.db.models.functions.comparison.Coalesce("refreshed_at", "authorized_at"),
                condition=models.Q(refresh_token__isnull=False),
                name="oauthconn_token_last_used",
            ),
        ),
    ]

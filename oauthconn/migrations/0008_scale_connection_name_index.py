"""Index Connection.name: the admin's and the API's connection lists are ordered by it.

One concurrent index per non-atomic migration (see oauthconn.migrations._operations).
"""

from django.db import migrations, models

from oauthconn.migrations._operations import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("oauthconn", "0007_switch_pending_switch"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="connection",
            index=models.Index(fields=["name"], name="oauthconn_connection_name"),
        ),
    ]

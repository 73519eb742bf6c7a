"""Grants owned by teams (or any OAUTHCONN["OWNER_MODEL"]), beside shared and per-user ones.

Additive: existing connections stay shared or per-user (``per_owner`` is False), existing
grants keep their user foreign key and get an empty ``owner_key``, so every row means what it
meant before. The "one shared grant" constraint now also requires an empty ``owner_key``
(a team's grant has no user either), and keyed owners get their own one-per-owner constraint.
"""

from django.db import migrations, models

#: With a database default too: rows inserted without the column (raw SQL, COPY) name no owner.
OWNER_KEY = models.CharField(blank=True, default="", db_default="", max_length=255)


class Migration(migrations.Migration):
    dependencies = [
        ("oauthconn", "0014_par_and_registration"),
    ]

    operations = [
        migrations.AddField(
            model_name="connection",
            name="per_owner",
            field=models.BooleanField(
                default=False,
                db_default=False,
                help_text="Each owner (team, organization: OAUTHCONN['OWNER_MODEL']) connects its own.",
                verbose_name="per-owner",
            ),
        ),
        *(
            migrations.AddField(model_name=name, name="owner_key", field=OWNER_KEY.clone())
            for name in ("token", "pendingauthorization", "pendingswitch", "event")
        ),
        migrations.RemoveConstraint(model_name="token", name="oauthconn_token_one_shared"),
        migrations.AddConstraint(
            model_name="token",
            constraint=models.UniqueConstraint(
                condition=models.Q(("owner__isnull", True), ("owner_key", "")),
                fields=("connection",),
                name="oauthconn_token_one_shared",
            ),
        ),
        migrations.AddConstraint(
            model_name="token",
            constraint=models.UniqueConstraint(
                condition=models.Q(("owner_key", ""), _negated=True),
                fields=("connection", "owner_key"),
                name="oauthconn_token_one_per_keyed_owner",
            ),
        ),
        migrations.AddConstraint(
            model_name="token",
            constraint=models.CheckConstraint(
                condition=models.Q(("owner__isnull", True), ("owner_key", ""), _connector="OR"),
                name="oauthconn_token_one_owner",
            ),
        ),
        migrations.AddConstraint(
            model_name="connection",
            constraint=models.CheckConstraint(
                condition=models.Q(("per_owner", True), ("per_user", True), _negated=True),
                name="oauthconn_connection_one_owner_kind",
                violation_error_message="A connection is per-user or per-owner, not both.",
            ),
        ),
    ]

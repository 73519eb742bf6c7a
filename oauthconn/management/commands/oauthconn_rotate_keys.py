"""Re-encrypt every stored secret with the newest key in OAUTHCONN['ENCRYPTION_KEYS']."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError
from django.db import models, transaction

from oauthconn.exceptions import DecryptionFailed
from oauthconn.fields import encrypted_fields

BATCH = 500


def models_with_secrets() -> list[type[models.Model]]:
    """Every oauthconn model with an encrypted field, read from the app registry so that a
    new model holding secrets (a held account switch, a pending revocation) is never missed."""
    return [m for m in apps.get_app_config("oauthconn").get_models() if encrypted_fields(m)]


class Command(BaseCommand):
    help = (
        "Re-encrypt client secrets, private keys and tokens with the first key of "
        "OAUTHCONN['ENCRYPTION_KEYS']. Run after adding a new key in front; then the old "
        "keys can be removed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        rotated, failed = 0, 0
        for model in models_with_secrets():
            done, broken = self.rotate_model(model)
            rotated += done
            failed += broken
        self.stdout.write(f"Re-encrypted {rotated} value(s); {failed} could not be decrypted.")
        if failed:
            raise CommandError(
                f"{failed} value(s) cannot be decrypted with any configured key; keep the old "
                "key(s) until those are re-entered or reauthorized."
            )

    def rotate_model(self, model: type[models.Model]) -> tuple[int, int]:
        names = encrypted_fields(model)
        rotated = failed = 0
        manager = model._default_manager
        pks = list(manager.order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(pks), BATCH):
            with transaction.atomic():
                rows = manager.select_for_update().filter(pk__in=pks[start : start + BATCH])
                for row in rows:
                    done, broken = self.rotate_row(row, names)
                    rotated += done
                    failed += broken
        return rotated, failed

    def rotate_row(self, row: models.Model, names: list[str]) -> tuple[int, int]:
        rotated = failed = 0
        changed = []
        for name in names:
            value = getattr(row, name)
            if value is None:
                continue
            try:
                setattr(row, name, value.rotated())
            except DecryptionFailed:
                self.stderr.write(f"Cannot decrypt {row._meta.label} #{row.pk} {name}.")
                failed += 1
                continue
            changed.append(name)
            rotated += 1
        if changed:
            row.save(update_fields=changed)
        return rotated, failed

"""Who holds a grant: nobody (a shared connection), a user (per-user), or an instance of the
site's ``OAUTHCONN["OWNER_MODEL"]`` (per-owner: a team, an organization, a tenant).

User grants keep their foreign key (``owner``); any other owner is stored as ``owner_key``,
``"<app_label>.<model>:<pk>"``. One string column works for whatever model the site names,
without a migration that depends on the site's app, and a grant stored for one model can never
be served for another (the label is part of the key). Every row that names an owner (tokens,
attempts, held account switches, events) uses these helpers, so the isolation rule (SECURITY
R64) lives here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db.models import Model, Q

from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import ConfigurationError

if TYPE_CHECKING:
    from oauthconn.models.connections import Connection
    from oauthconn.types import Owner

#: room for an app label, a model name and a UUID or a long natural key
OWNER_KEY_LENGTH = 255


def owner_model() -> type[Model] | None:
    """The model named by ``OAUTHCONN["OWNER_MODEL"]``, or None when the site names none."""
    label = oauthconn_settings.OWNER_MODEL
    if not label:
        return None
    try:
        return apps.get_model(label)
    except (LookupError, ValueError) as err:
        raise ConfigurationError(
            f'OAUTHCONN["OWNER_MODEL"] = {label!r} is not an installed model '
            '("app_label.ModelName").'
        ) from err


def is_user(owner: object) -> bool:
    return isinstance(owner, get_user_model())


def owner_key(owner: Owner) -> str:
    """``""`` for nobody or a user, ``"<app_label>.<model>:<pk>"`` for any other owner."""
    if owner is None or is_user(owner):
        return ""
    if not isinstance(owner, Model):
        raise ConfigurationError(
            f"A grant's owner must be a user or a model instance, not {type(owner).__name__}."
        )
    if owner.pk is None:
        raise ConfigurationError(f"The owner {owner!r} is not saved: it has no primary key.")
    key = f"{owner._meta.label_lower}:{owner.pk}"
    if len(key) > OWNER_KEY_LENGTH:
        raise ConfigurationError(f"The owner's key is longer than {OWNER_KEY_LENGTH} characters.")
    return key


def owner_fields(owner: Owner) -> dict[str, Any]:
    """The column values that name ``owner`` on a new row (token, attempt, switch, event)."""
    return {"owner": owner if is_user(owner) else None, "owner_key": owner_key(owner)}


def owner_q(owner: Owner) -> Q:
    """The rows of ``owner`` exactly: a shared lookup never matches a team's or user's row."""
    if owner is None:
        return Q(owner__isnull=True, owner_key="")
    if is_user(owner):
        return Q(owner=owner)
    return Q(owner_key=owner_key(owner))


def kind_q(connection: Connection) -> Q:
    """The rows an owner of ``connection``'s kind can have: after a switch between shared,
    per-user and per-owner, the other rows can never be looked up again."""
    if connection.per_owner:
        return ~Q(owner_key="")
    if connection.per_user:
        return Q(owner__isnull=False)
    return Q(owner__isnull=True, owner_key="")


def check_owner(connection: Connection, owner: Owner) -> None:
    """ConfigurationError unless ``owner`` is the kind of owner ``connection``'s grants have:
    nobody (shared), a saved user (per-user), a saved ``OWNER_MODEL`` instance (per-owner)."""
    slug = connection.slug
    if connection.per_owner:
        model = owner_model()
        if model is None:
            raise ConfigurationError(
                f'{slug!r} is a per-owner connection, but OAUTHCONN["OWNER_MODEL"] is not set.'
            )
        if not isinstance(owner, model) or is_user(owner):
            raise ConfigurationError(
                f"{slug!r} is a per-{model._meta.verbose_name} connection: pass "
                f"owner=<{model._meta.label}>, not {_kind(owner)}."
            )
    elif connection.per_user:
        if not is_user(owner):
            raise ConfigurationError(
                f"{slug!r} is a per-user connection: pass owner=<user>, not {_kind(owner)}."
            )
    elif owner is not None:
        raise ConfigurationError(f"{slug!r} is a shared connection: do not pass owner.")
    if owner is not None and getattr(owner, "pk", None) is None:
        raise ConfigurationError(f"The owner {owner!r} is not saved: it has no primary key.")


def _kind(owner: object) -> str:
    if owner is None:
        return "None"
    if isinstance(owner, Model):
        return f"an instance of {owner._meta.label}"
    return f"a value of type {type(owner).__name__}"


def load_owners(keys: Iterable[str]) -> dict[str, Model]:
    """The owners these keys name, by key: one query per model. Keys of deleted owners or
    uninstalled models are left out (a page shows the key itself for them)."""
    by_label: dict[str, dict[str, str]] = {}
    for key in keys:
        label, _, pk = key.rpartition(":")
        by_label.setdefault(label, {})[pk] = key
    found: dict[str, Model] = {}
    for label, pks in by_label.items():
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            continue
        for owner in model._default_manager.filter(pk__in=list(pks)):
            found[pks[str(owner.pk)]] = owner
    return found


def describe_owner(row: Any) -> str:
    """Who a row's grant belongs to, for people: the user, the owner's key, or "shared"."""
    if row.owner_id is not None:
        return str(row.owner)
    return row.owner_key or "shared"

"""An encrypted text field: plaintext in Python only as a ``Sealed`` value, ciphertext in the DB."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models.query_utils import DeferredAttribute

from oauthconn.crypto import Sealed

if TYPE_CHECKING:
    # django-stubs types a field by its generic (set, get) pair: assigning takes plaintext,
    # a ``Sealed`` or ``None``; reading gives ``Sealed`` or ``None`` (see SealedDescriptor).
    # Django's Field is not subscriptable at runtime, hence the split.
    _TextFieldBase = models.TextField[Sealed | str | None, Sealed | None]
else:
    _TextFieldBase = models.TextField


class SealedDescriptor(DeferredAttribute):
    """Seals plaintext on assignment, so the attribute is always ``Sealed`` or ``None``.

    Reading is Django's own: a value left out by ``defer()`` or ``only()`` is read from the
    database on first use, never taken for "not set".
    """

    def __set__(self, instance: Any, value: Any) -> None:
        if isinstance(value, str):
            value = Sealed.seal(value) if value else None
        instance.__dict__[self.field.attname] = value


class EncryptedTextField(_TextFieldBase):
    """Stores a secret encrypted with the keyring; empty means "not set" (``None``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("blank", True)
        kwargs.setdefault("null", True)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def contribute_to_class(self, cls: type, name: str, *args: Any, **kwargs: Any) -> None:
        super().contribute_to_class(cls, name, *args, **kwargs)
        setattr(cls, self.attname, SealedDescriptor(self))

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Sealed | None:
        return Sealed(value) if value else None

    def to_python(self, value: Any) -> Sealed | None:
        if isinstance(value, Sealed) or value is None:
            return value
        return Sealed.seal(value) if value else None

    def get_prep_value(self, value: Any) -> str | None:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            value = Sealed.seal(value)
        return value.ciphertext

    def value_to_string(self, obj: Any) -> str:
        # Serializers (dumpdata) get ciphertext, never plaintext.
        value = self.value_from_object(obj)
        return value.ciphertext if value is not None else ""


def encrypted_fields(model: type[models.Model]) -> list[str]:
    """The attribute names of ``model``'s encrypted fields."""
    return [f.attname for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]

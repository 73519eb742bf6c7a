"""Permission classes of the API, and their resolution from settings at request time."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from rest_framework.permissions import BasePermission, DjangoModelPermissions
from rest_framework.request import Request
from rest_framework.views import APIView

from oauthconn.conf import oauthconn_settings


def resolve_permission_classes(setting: str) -> list[type[BasePermission]]:
    """Import the classes named by ``OAUTHCONN[setting]``; an error names the setting."""
    paths = getattr(oauthconn_settings, setting)
    if isinstance(paths, str):
        raise ImproperlyConfigured(f"OAUTHCONN[{setting!r}] must be a list of import strings.")
    classes = []
    for path in paths:
        try:
            classes.append(import_string(path))
        except ImportError as err:
            raise ImproperlyConfigured(
                f"OAUTHCONN[{setting!r}]: cannot import {path!r} ({err})."
            ) from err
    return classes


class StaffModelPermissions(DjangoModelPermissions):
    """Staff users with Django's model permissions; reading needs the ``view`` permission.

    A view may name extra permissions per action in ``action_permissions`` (``authorize``
    needs ``oauthconn.authorize_connection``, ...); those replace the method's permissions,
    because a POST to an action is not an ``add``.
    """

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff):
            return False
        action_perms = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
        if action_perms is not None:
            return user.has_perms(action_perms)
        return super().has_permission(request, view)

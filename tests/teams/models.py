"""Teams as a SaaS site would have them: oauthconn knows nothing of membership, it asks
:func:`teams_of` (``OAUTHCONN["OWNER_RESOLVER"]``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


class Team(models.Model):
    name = models.CharField(max_length=100)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="teams", blank=True)

    def __str__(self) -> str:
        return self.name


class Project(models.Model):
    """Another model of the site: never an owner (OWNER_MODEL names Team only)."""

    name = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.name


def teams_of(user: Any) -> models.QuerySet[Team]:
    """The resolver: the teams ``user`` is a member of, read anew on every call."""
    return Team.objects.filter(members=user)

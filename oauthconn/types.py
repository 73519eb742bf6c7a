"""Type aliases for the people in the flows: who owns a grant, who acts, who is asking.

One place on purpose: owners will grow beyond users (teams, organizations; see DESIGN.md),
and then ``Owner`` changes here rather than in every signature.

``User`` is the project's ``AUTH_USER_MODEL``: django-stubs' mypy plugin expands the stubs-only
alias ``django.contrib.auth.models._User`` to the configured model, so the type matches what
the foreign keys accept. At runtime these are plain strings (nothing imports the user model
before the app registry is ready); they are for annotations only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, _User
    from django.db.models import Model

#: A user of this project: ``AUTH_USER_MODEL``.
User: TypeAlias = "_User"
#: Who holds a grant: a user for a per-user connection, an ``OAUTHCONN["OWNER_MODEL"]``
#: instance (a team) for a per-owner connection, ``None`` for a shared connection
#: (oauthconn.models.owners checks which kind a connection takes).
Owner: TypeAlias = "User | Model | None"
#: Who did something: usually ``request.user``; ``None`` is the system itself (a command, a
#: task). Events and tokens record only a signed-in user; an anonymous one is stored as None.
Actor: TypeAlias = "User | AnonymousUser | None"
#: Whoever sends a request: a signed-in user or Django's anonymous user.
RequestUser: TypeAlias = "User | AnonymousUser"

"""oauthconn's models, one module per part of the domain (models never touch the network):

- :mod:`~oauthconn.models.connections`: ``Provider`` and ``Connection``, what an admin sets up;
- :mod:`~oauthconn.models.tokens`: ``Token``, the grant one owner holds, and its health;
- :mod:`~oauthconn.models.pending`: authorization attempts, account switches awaiting an
  answer, revocations to retry;
- :mod:`~oauthconn.models.events`: the audit trail (``Event``) and the notification outbox.
"""

from oauthconn.models.connections import (
    URL_LENGTH,
    ClientAuthMethod,
    Connection,
    GrantType,
    Provider,
    url_field,
)
from oauthconn.models.events import RENEWAL_EVENTS, Event, EventKind, Notification
from oauthconn.models.pending import (
    PendingAuthorization,
    PendingAuthorizationQuerySet,
    PendingRevocation,
    PendingSwitch,
)
from oauthconn.models.tokens import (
    LEEWAY_SHARE,
    USABLE_STATUSES,
    Token,
    TokenQuerySet,
    TokenStatus,
)

__all__ = [
    "LEEWAY_SHARE",
    "RENEWAL_EVENTS",
    "URL_LENGTH",
    "USABLE_STATUSES",
    "ClientAuthMethod",
    "Connection",
    "Event",
    "EventKind",
    "GrantType",
    "Notification",
    "PendingAuthorization",
    "PendingAuthorizationQuerySet",
    "PendingRevocation",
    "PendingSwitch",
    "Provider",
    "Token",
    "TokenQuerySet",
    "TokenStatus",
    "url_field",
]

"""oauthconn's models, one module per part of the domain (models never touch the network):

- :mod:`~oauthconn.models.providers`: ``Provider``, an authorization server;
- :mod:`~oauthconn.models.connections`: ``Connection``, what an admin sets up at a provider;
- :mod:`~oauthconn.models.tokens`: ``Token``, the grant one owner holds, and its health;
- :mod:`~oauthconn.models.pending`: authorization attempts, account switches awaiting an
  answer, revocations to retry;
- :mod:`~oauthconn.models.events`: the audit trail (``Event``) and the notification outbox.
"""

from oauthconn.models.connections import ClientAuthMethod, Connection, GrantType
from oauthconn.models.events import RENEWAL_EVENTS, Event, EventKind, Notification
from oauthconn.models.pending import (
    PendingAuthorization,
    PendingAuthorizationQuerySet,
    PendingRevocation,
    PendingSwitch,
)
from oauthconn.models.providers import URL_LENGTH, Provider, url_field
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

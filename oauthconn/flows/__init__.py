"""Flows: the database side of OAuth (transactions, locks, events, signals).

Edges (views, admin, API, commands, the client) call these; these call the protocol layer.
"""

from oauthconn.flows.authorization import complete_authorization, start_authorization
from oauthconn.flows.revocation import DisconnectResult, disconnect
from oauthconn.flows.tokens import get_valid_token, load_token, renew

__all__ = [
    "DisconnectResult",
    "complete_authorization",
    "disconnect",
    "get_valid_token",
    "load_token",
    "renew",
    "start_authorization",
]

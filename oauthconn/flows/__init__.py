"""Flows: the database side of OAuth (transactions, locks, events, signals).

Edges (views, admin, API, commands, the client) call these; these call the protocol layer.
"""

from oauthconn.flows.authorization import complete_authorization, start_authorization
from oauthconn.flows.configuration import SECURITY_RELEVANT_FIELDS, invalidate_grants
from oauthconn.flows.connections import (
    KIND_FIELDS,
    Connected,
    Redirect,
    connect,
    connected_grant,
    delete_connection,
    disconnect_owner,
    end_stranded_grants,
    revoke_grants,
)
from oauthconn.flows.probe import ProbeResult, probe_connection
from oauthconn.flows.revocation import DisconnectResult, disconnect
from oauthconn.flows.switch import SwitchAnswer, confirm_switch, decline_switch, pending_switch
from oauthconn.flows.switching import HeldSwitch
from oauthconn.flows.tokens import Renewal, get_valid_token, load_token, renew, renew_now
from oauthconn.flows.validation import validate_configuration, validate_provider

__all__ = [
    "KIND_FIELDS",
    "SECURITY_RELEVANT_FIELDS",
    "Connected",
    "DisconnectResult",
    "HeldSwitch",
    "ProbeResult",
    "Redirect",
    "Renewal",
    "SwitchAnswer",
    "complete_authorization",
    "confirm_switch",
    "decline_switch",
    "connect",
    "connected_grant",
    "delete_connection",
    "disconnect",
    "disconnect_owner",
    "end_stranded_grants",
    "get_valid_token",
    "invalidate_grants",
    "load_token",
    "pending_switch",
    "probe_connection",
    "renew",
    "renew_now",
    "revoke_grants",
    "start_authorization",
    "validate_configuration",
    "validate_provider",
]

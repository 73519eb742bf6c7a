"""Admin for providers, connections, tokens (metadata only) and events."""

from oauthconn.admin.connections import ConnectionAdmin, ProviderAdmin
from oauthconn.admin.records import EventAdmin, TokenAdmin

__all__ = ["ConnectionAdmin", "EventAdmin", "ProviderAdmin", "TokenAdmin"]

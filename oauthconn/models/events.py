"""The audit trail and the notification outbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from oauthconn.models.connections import Connection
from oauthconn.models.owners import OWNER_KEY_LENGTH
from oauthconn.models.providers import URL_LENGTH
from oauthconn.models.tokens import Token

if TYPE_CHECKING:
    pass


class EventKind(models.TextChoices):
    AUTHORIZED = "authorized", _("Authorized")
    REFRESHED = "refreshed", _("Refreshed")
    REFRESH_FAILED = "refresh_failed", _("Refresh failed")
    NEEDS_REAUTH = "needs_reauth", _("Needs reauthorization")
    RECOVERED = "recovered", _("Recovered")
    REVOKED = "revoked", _("Revoked")
    AUTHORIZATION_FAILED = "authorization_failed", _("Authorization failed")
    KEYS_ROTATED = "keys_rotated", _("Encryption keys rotated")


class Event(models.Model):
    """An audit trail entry. Never holds a secret: messages are built from fixed sentences."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="events")
    token = models.ForeignKey(
        Token, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    owner_key = models.CharField(max_length=OWNER_KEY_LENGTH, blank=True, default="", db_default="")
    kind = models.CharField(max_length=32, choices=EventKind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # The health overview counts events per kind over a time range (oauthconn.flows.health).
        indexes = [models.Index(fields=["kind", "created_at"], name="oauthconn_event_kind_time")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {self.connection}"

    @property
    def actor_label(self) -> str:
        """Who caused the event, for people: the user, else the job that recorded itself in
        ``data["source"]`` (e.g. ``oauthconn_refresh``), else "automatic" for a renewal that
        site code triggered by using the token; "" when nobody is known."""
        if self.actor_id is not None:
            return str(self.actor)
        source = self.data.get("source") if isinstance(self.data, dict) else None
        if source:
            return str(source)
        return "automatic" if self.kind in RENEWAL_EVENTS else ""


#: The events a renewal records: made by whoever used the token, when no user asked for them.
RENEWAL_EVENTS = frozenset(
    {
        EventKind.REFRESHED,
        EventKind.REFRESH_FAILED,
        EventKind.NEEDS_REAUTH,
        EventKind.RECOVERED,
    }
)


class Notification(models.Model):
    """The outbox: one message about a state change to one destination (an e-mail or a
    webhook), written in the transaction that changed the state and delivered afterwards by
    ``oauthconn_refresh`` / the Celery task, with retries (see docs/operations.md).

    ``payload`` holds what the message says, never a secret: kind, connection slug and name,
    owner id, status, message, time, an admin link.
    """

    class Channel(models.TextChoices):
        EMAIL = "email", _("E-mail")
        WEBHOOK = "webhook", _("Webhook")

    event = models.ForeignKey(
        Event, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    token = models.ForeignKey(
        Token, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    #: The grant's state this tells about (needs_reauth, revoked, failing): at most one
    #: notification per destination each time a grant enters a state.
    state = models.CharField(max_length=20)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    #: The webhook URL, the e-mail address, or "admins" (settings.ADMINS via mail_admins).
    destination = models.CharField(max_length=URL_LENGTH)
    payload = models.JSONField(default=dict)
    attempts = models.PositiveIntegerField(default=0)
    #: None once delivered or given up.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(delivered_at__isnull=True),
                name="oauthconn_notification_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.state} to {self.channel} ({self.destination})"

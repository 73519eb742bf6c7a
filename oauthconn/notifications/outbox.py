"""Deciding what to notify, in the transaction that changed a grant's state.

:func:`enqueue_for_event` runs inside ``record_event`` (oauthconn.flows.common), so the
outbox rows commit or roll back with the state change itself: a crash after commit still
leaves them to deliver, which an ``on_commit`` signal receiver could not promise.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Max, Min
from django.urls import NoReverseMatch, reverse

from oauthconn.conf import oauthconn_settings
from oauthconn.models import Event, EventKind, Notification, Token

#: Events that put a grant in a state someone has to hear about, and that state.
STATE_FOR_EVENT: dict[str, str] = {
    EventKind.NEEDS_REAUTH: "needs_reauth",
    EventKind.REVOKED: "revoked",
    EventKind.REFRESH_FAILED: "failing",
}
#: Events after which the grant works again: the next bad state is a new state change.
WORKING_AGAIN = (EventKind.AUTHORIZED, EventKind.REFRESHED, EventKind.RECOVERED)


def enqueue_for_event(event: Event) -> list[Notification]:
    """Write the outbox rows ``event`` calls for: none unless it is a new bad state."""
    state = STATE_FOR_EVENT.get(event.kind)
    token = event.token
    if state is None or token is None:
        return []
    if state == "failing" and not _failing_long_enough(token, event.created_at):
        return []
    if _already_notified(token, state):
        return []
    payload = build_payload(event, state)
    return [
        Notification.objects.create(
            event=event,
            token=token,
            state=state,
            channel=channel,
            destination=destination,
            payload=payload,
            next_attempt_at=event.created_at,
        )
        for channel, destination in destinations(event)
    ]


def destinations(event: Event) -> list[tuple[str, str]]:
    """(channel, destination) pairs from the settings at the time of the state change."""
    found: list[tuple[str, str]] = []
    emails = oauthconn_settings.NOTIFY_EMAILS
    if emails is None:
        if settings.ADMINS:
            found.append((Notification.Channel.EMAIL, "admins"))
    else:
        found += [(Notification.Channel.EMAIL, address) for address in emails]
    owner = event.owner
    owner_email = getattr(owner, "email", "") if owner is not None else ""
    if oauthconn_settings.NOTIFY_OWNERS and owner_email and event.actor_id != event.owner_id:
        if (Notification.Channel.EMAIL, owner_email) not in found:
            found.append((Notification.Channel.EMAIL, owner_email))
    for hook in oauthconn_settings.WEBHOOKS:
        found.append((Notification.Channel.WEBHOOK, hook["url"]))
    return found


def _failing_long_enough(token: Token, now: datetime) -> bool:
    """Whether the failure that started this run of failures is NOTIFY_FAILING_AFTER old."""
    after = oauthconn_settings.NOTIFY_FAILING_AFTER
    if after is None:
        return False
    events = Event.objects.filter(token=token)
    last_ok = events.filter(kind__in=WORKING_AGAIN).aggregate(at=Max("created_at"))["at"]
    failures = events.filter(kind=EventKind.REFRESH_FAILED)
    if last_ok is not None:
        failures = failures.filter(created_at__gt=last_ok)
    first = failures.aggregate(at=Min("created_at"))["at"]
    return first is not None and now - first >= timedelta(seconds=float(after))


def _already_notified(token: Token, state: str) -> bool:
    """True when the grant's last notification was about this state and it has not worked
    since: failed attempts repeat, the state change happened once."""
    last = Notification.objects.filter(token=token).order_by("-created_at", "-id").first()
    if last is None or last.state != state:
        return False
    return not Event.objects.filter(
        token=token, kind__in=WORKING_AGAIN, created_at__gt=last.created_at
    ).exists()


def build_payload(event: Event, state: str) -> dict[str, Any]:
    """What a notification says. Built from fixed fields: never a token or secret."""
    connection = event.connection
    return {
        "id": f"oauthconn-{event.pk}-{state}",
        "type": f"oauthconn.grant.{state}",
        "connection": {"slug": connection.slug, "name": connection.name},
        "owner_id": event.owner_id,
        # a per-owner grant's owner ("<app_label>.<model>:<pk>", docs/owners.md), else ""
        "owner_key": event.owner_key,
        "status": state,
        "message": event.message,
        "occurred_at": event.created_at.isoformat(),
        "admin_url": admin_url(connection.pk),
    }


def admin_url(pk: int) -> str | None:
    """The connection's admin page on this site (REDIRECT_BASE_URL is its public origin)."""
    try:
        path = reverse("admin:oauthconn_connection_change", args=[pk])
    except NoReverseMatch:  # the admin is not mounted on this site
        return None
    return oauthconn_settings.REDIRECT_BASE_URL.rstrip("/") + path

"""Delivering the outbox: e-mails and signed webhooks, retried with backoff, at least once.

Runs where refresh runs (``oauthconn_refresh`` and the Celery task call
:func:`deliver_due`), outside any transaction: the network is never waited on under a lock.
Each row is claimed with a short lease (a conditional UPDATE), so several copies of the
command on several hosts do not send the same row at the same moment; a copy that dies
mid-send leaves the lease to expire and the row is sent again (at least once).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from datetime import datetime, timedelta

from django.core.mail import mail_admins, send_mail
from django.utils import timezone

from oauthconn import http
from oauthconn.backoff import jittered_backoff
from oauthconn.conf import oauthconn_settings
from oauthconn.exceptions import OAuthConnError
from oauthconn.models import Notification
from oauthconn.notifications.signing import signed_headers

logger = logging.getLogger("oauthconn")

LEASE = timedelta(minutes=2)
BACKOFF_BASE = 30.0
BACKOFF_CAP = 6 * 3600.0
#: Rows handled per run, so one run stays bounded; the next run takes the rest.
BATCH = 200


class DeliveryFailed(Exception):
    """A delivery attempt did not go through; the row is retried later.

    Private to this module (it never reaches a caller: :func:`deliver_one` turns it into a
    retry), which is why it is not part of the tree in oauthconn.exceptions.
    """


def backoff_delay(attempts: int) -> float:
    """Seconds before the next delivery attempt after ``attempts`` failures."""
    return jittered_backoff(attempts, base=BACKOFF_BASE, cap=BACKOFF_CAP)


def deliver_due(now: datetime | None = None) -> dict[str, int]:
    """Send every due notification once; returns counts of delivered, retry, given_up."""
    now = now or timezone.now()
    due = Notification.objects.filter(delivered_at__isnull=True, next_attempt_at__lte=now)
    counts: Counter[str] = Counter()
    for pk, planned in due.order_by("next_attempt_at").values_list("pk", "next_attempt_at")[:BATCH]:
        if _claim(pk, planned, now):
            counts[deliver_one(Notification.objects.get(pk=pk), now)] += 1
    return {key: counts[key] for key in ("delivered", "retry", "given_up")}


def _claim(pk: int, planned: datetime | None, now: datetime) -> bool:
    claimed = Notification.objects.filter(pk=pk, next_attempt_at=planned, delivered_at=None)
    return bool(claimed.update(next_attempt_at=now + LEASE))


def deliver_one(notification: Notification, now: datetime) -> str:
    """One attempt; records the outcome on the row."""
    notification.attempts += 1
    try:
        send(notification)
    except DeliveryFailed as err:
        return _failed(notification, str(err), now)
    notification.delivered_at = timezone.now()
    notification.next_attempt_at = None
    notification.last_error = ""
    notification.save(update_fields=["attempts", "delivered_at", "next_attempt_at", "last_error"])
    return "delivered"


def _failed(notification: Notification, reason: str, now: datetime) -> str:
    notification.last_error = reason
    if notification.attempts >= oauthconn_settings.NOTIFY_MAX_ATTEMPTS:
        notification.next_attempt_at = None
        outcome = "given_up"
    else:
        delay = backoff_delay(notification.attempts)
        notification.next_attempt_at = now + timedelta(seconds=delay)
        outcome = "retry"
    notification.save(update_fields=["attempts", "next_attempt_at", "last_error"])
    logger.warning(
        "oauthconn notification %s to %s: attempt %d failed (%s), %s",
        notification.pk,
        notification.channel,
        notification.attempts,
        reason,
        outcome,
    )
    return outcome


def send(notification: Notification) -> None:
    if notification.channel == Notification.Channel.WEBHOOK:
        post_webhook(notification.destination, notification.payload)
    else:
        send_email(notification.destination, notification.payload)


def send_email(destination: str, payload: dict) -> None:
    """``destination`` is an address, or "admins" for settings.ADMINS."""
    subject, body = email_text(payload)
    try:
        if destination == "admins":
            mail_admins(subject, body, fail_silently=False)
        else:
            send_mail(subject, body, None, [destination], fail_silently=False)
    except OSError as err:  # smtplib.SMTPException is an OSError, as are socket errors
        raise DeliveryFailed(f"sending the e-mail failed: {type(err).__name__}") from err


def owner_line(payload: dict) -> str:
    if payload.get("owner_key"):  # a team's grant (docs/owners.md)
        return f"Owner: {payload['owner_key']}"
    return f"Owner (user id): {payload['owner_id'] or 'shared connection'}"


def email_text(payload: dict) -> tuple[str, str]:
    """Subject and body (plain text; everything comes from the secret-free payload)."""
    name = payload["connection"]["name"]
    headline = {
        "needs_reauth": f"{name} needs reauthorization",
        "revoked": f"{name} was disconnected",
        "failing": f"{name} has been failing",
    }.get(payload["status"], f"{name}: {payload['status']}")
    lines = [
        headline + ".",
        "",
        f"Connection: {name} ({payload['connection']['slug']})",
        owner_line(payload),
        f"When: {payload['occurred_at']}",
        f"What happened: {payload['message'] or '-'}",
    ]
    if payload.get("admin_url"):
        lines.append(f"Open: {payload['admin_url']}")
    return f"[oauthconn] {headline}", "\n".join(lines) + "\n"


def post_webhook(url: str, payload: dict) -> None:
    """POST the signed JSON through oauthconn's HTTP factory (SSRF guard, timeouts,
    deadline). Any 2xx is delivery; anything else is retried."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    headers = {"Content-Type": "application/json", **signed_headers(webhook_secret(url), body)}
    try:
        with http.build_client() as client:
            response = http.send(client, "POST", url, content=body, headers=headers)
    except OAuthConnError as err:
        raise DeliveryFailed(str(err)) from err
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"the receiver answered HTTP {response.status_code}")


def webhook_secret(url: str) -> str:
    """The shared secret configured for ``url`` now (read at delivery: secrets rotate)."""
    for hook in oauthconn_settings.WEBHOOKS:
        if hook.get("url") != url:
            continue
        secret = hook.get("secret") or os.environ.get(hook.get("secret_env", ""), "")
        if secret:
            return secret
        raise DeliveryFailed("the webhook has no secret (set 'secret' or 'secret_env')")
    raise DeliveryFailed("the webhook is no longer configured in OAUTHCONN['WEBHOOKS']")

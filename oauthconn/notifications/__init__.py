"""Notifications when a grant needs someone: e-mails and signed webhooks, via an outbox.

- :func:`enqueue_for_event` (called by ``record_event``) writes outbox rows in the
  transaction that changed the grant's state, at most one per destination per state change;
- :func:`deliver_due` (called by ``oauthconn_refresh`` and the Celery task) sends them, with
  retries and backoff;
- :func:`verify` is how a Python receiver checks a webhook's signature and timestamp.

See docs/operations.md.
"""

from oauthconn.notifications.delivery import deliver_due
from oauthconn.notifications.outbox import enqueue_for_event
from oauthconn.notifications.signing import verify

__all__ = ["deliver_due", "enqueue_for_event", "verify"]

"""Signals, sent after the transaction that caused them commits.

Every signal is sent with ``sender=Connection`` and these keyword arguments:

- ``connection``: the ``Connection``;
- ``token``: the ``Token`` (the grant of one owner), or ``None``;
- ``owner``: the user of a per-user token, ``None`` for a shared connection or a team's;
- ``owner_key``: a per-owner token's owner as ``"<app_label>.<model>:<pk>"``, else ``""``
  (docs/owners.md);
- ``actor``: the user who caused it, ``None`` for site code and background jobs;
- ``event``: the ``Event`` row written for it (its ``message`` and ``data`` hold no secret).

``refresh_failed`` and ``needs_reauthorization`` also get ``error``: the ``OAuthConnError``.
"""

from django.dispatch import Signal

authorized = Signal()
refreshed = Signal()
refresh_failed = Signal()
needs_reauthorization = Signal()
recovered = Signal()
revoked = Signal()

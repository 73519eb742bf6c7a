"""Short-lived rows: authorization attempts, account switches awaiting an answer, and
revocations to retry."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils import timezone

from oauthconn.fields import EncryptedTextField
from oauthconn.models.connections import Connection
from oauthconn.models.owners import OWNER_KEY_LENGTH
from oauthconn.models.providers import URL_LENGTH
from oauthconn.models.tokens import Token

if TYPE_CHECKING:
    pass


class PendingAuthorizationQuerySet(models.QuerySet):
    def expired(self, now: datetime | None = None) -> PendingAuthorizationQuerySet:
        return self.filter(expires_at__lte=now or timezone.now())


class PendingAuthorization(models.Model):
    """One started authorization attempt, keyed by a hash of its ``state`` (R9, R16).

    The ``state`` itself is never stored; the verifier and nonce are encrypted. The attempt is
    bound to the browser session that started it (``browser_hash``) and to the user.
    """

    state_hash = models.CharField(max_length=64, unique=True)
    browser_hash = models.CharField(max_length=64, db_index=True)
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE, related_name="+"
    )
    owner_key = models.CharField(max_length=OWNER_KEY_LENGTH, blank=True, default="", db_default="")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    code_verifier = EncryptedTextField()
    nonce = EncryptedTextField()
    redirect_uri = models.CharField(max_length=URL_LENGTH)
    return_to = models.CharField(max_length=URL_LENGTH, blank=True)
    #: the scopes this attempt asked for, space separated: the connection's, plus those of
    #: an incremental authorization (flows.scopes); a token response without ``scope``
    #: granted these (RFC 6749 §5.1)
    scope = models.TextField(blank=True)
    #: the API base URL's {ask:...} values typed when the attempt started (checked then)
    base_values = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    #: set (and the verifier and nonce dropped) when its callback arrives; kept until it
    #: expires so a replay (back button, reload) gets "already used", not "unknown"
    consumed_at = models.DateTimeField(null=True, blank=True)

    objects = PendingAuthorizationQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Authorization of {self.connection} started {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def scope_list(self) -> list[str]:
        return self.scope.split()

    @staticmethod
    def hash(value: str) -> str:
        return hashlib.sha256(value.encode()).hexdigest()


class PendingSwitch(models.Model):
    """A reauthorization by another account, waiting for the person to confirm it (defect 7b).

    The new grant's token response sits here encrypted (never in the session or a URL), bound
    to the browser session and user of the attempt, valid for ``STATE_LIFETIME`` seconds and
    taken once; the URL names it by a random key whose hash is stored. The display claims
    are kept to name both accounts on the confirmation page.
    """

    key_hash = models.CharField(max_length=64, unique=True)
    browser_hash = models.CharField(max_length=64)
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE, related_name="+"
    )
    owner_key = models.CharField(max_length=OWNER_KEY_LENGTH, blank=True, default="", db_default="")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    #: the token response as JSON, encrypted; dropped when the switch is taken
    tokens = EncryptedTextField()
    old_subject = models.CharField(max_length=255)
    old_claims = models.JSONField(default=dict, blank=True)
    subject = models.CharField(max_length=255)
    claims = models.JSONField(default=dict, blank=True)
    #: the new grant's API base URL values (Token.base_values), stored with it if confirmed
    base_values = models.JSONField(default=dict, blank=True)
    return_to = models.CharField(max_length=URL_LENGTH, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    #: set when confirmed or declined; kept until it expires so a replay is told "already used"
    consumed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Account switch of {self.connection} started {self.created_at:%Y-%m-%d %H:%M}"


class PendingRevocation(models.Model):
    """A token whose revocation failed for a passing reason (RFC 7009 §2.2.1: on 503 the
    client assumes the token still exists and retries later). The grant is already wiped
    locally; ``oauthconn_revoke_pending`` retries, and only at the endpoint it was sent to."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    token = models.ForeignKey(Token, null=True, on_delete=models.SET_NULL, related_name="+")
    value = EncryptedTextField()
    token_type_hint = models.CharField(max_length=20)
    endpoint = models.CharField(max_length=URL_LENGTH)
    attempts = models.PositiveIntegerField(default=1)
    next_attempt_at = models.DateTimeField(db_index=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Revocation of a {self.token_type_hint} of {self.connection}"

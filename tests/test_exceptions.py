"""Issue 14: one home for "temporary or permanent" and distinct codes for what a caller does next.

Every class of the exception tree is classified here, so a new class cannot be added without
deciding whether the flows retry it (refresh and client credentials: failing with backoff or
needs reauthorization; revocation: retried later or given up).
"""

from __future__ import annotations

import inspect

import httpx
import pytest

from oauthconn import exceptions as oc
from oauthconn.api.errors import status_for

#: class -> permanent? (True: a person must act; False: retrying with backoff may work)
PERMANENT = {
    oc.OAuthConnError: False,
    oc.ConfigurationError: True,
    oc.EncryptionKeyError: True,
    oc.DecryptionFailed: False,  # the key can be put back
    oc.InsecureURL: True,
    oc.ConnectionNotFound: True,
    oc.TokenUnavailable: False,
    oc.NotConnected: True,
    oc.ReauthorizationRequired: True,
    oc.TemporarilyUnavailable: False,
    oc.Busy: False,
    oc.DisallowedResourceURL: True,
    oc.GrantValueRefused: True,
    oc.TransportError: False,
    oc.ProviderTimeout: False,
    oc.DeadlineExceeded: False,
    oc.TLSVerificationFailed: False,
    oc.BlockedDestination: False,
    oc.ResponseTooLarge: False,
    oc.AuthorizationFailed: True,
    oc.InvalidCallback: True,
    oc.AttemptAlreadyUsed: True,
    oc.SessionMissing: True,
    oc.SignedOut: True,
    oc.NotPermitted: True,
    oc.SwitchRefused: True,
    oc.SwitchNotFound: True,
    oc.SwitchExpired: True,
    oc.SwitchAlreadyUsed: True,
    oc.IssuerMismatch: True,
    oc.AuthorizationDenied: True,
    oc.ProviderError: False,
    oc.InvalidGrant: True,
    oc.InvalidClient: True,
    oc.UnauthorizedClient: True,
    oc.RegistrationRefused: True,
    oc.ProviderUnavailable: False,
    oc.InvalidProviderResponse: False,
    oc.DPoPNonceRejected: False,  # its nonces may settle
    oc.DPoPProofRejected: False,  # as any other refused request: a valid grant is kept
    oc.DiscoveryFailed: True,
    oc.InvalidIDToken: False,
    oc.MalformedIDToken: False,
    oc.IDTokenAlgorithmNotAllowed: False,
    oc.IDTokenSignatureInvalid: False,
    oc.IDTokenKeyNotFound: False,
    oc.JWKSUnavailable: False,
    oc.IDTokenIssuerMismatch: False,
    oc.IDTokenAudienceMismatch: False,
    oc.IDTokenExpired: False,
    oc.IDTokenIssuedInFuture: False,
    oc.IDTokenNonceMismatch: False,
    oc.IdentityChanged: True,
    oc.UserinfoFailed: False,
    oc.ScopesRequired: True,  # a person must consent to the scopes
    oc.ScopeNotAllowed: True,
    oc.RetriesExhausted: False,  # the API's 429 / 503 may pass (docs/calls.md)
    oc.RateLimited: False,
    oc.WorkerDied: False,  # the next run takes its tokens once their leases end
}


def make(cls: type[oc.OAuthConnError]) -> oc.OAuthConnError:
    if issubclass(cls, oc.RetriesExhausted):  # it carries the API's last response
        last = httpx.Response(429, request=httpx.Request("GET", "https://api.example/items"))
        return cls("GET api.example/items answered 429", response=last, attempts=3)
    return cls("access_denied") if cls is oc.AuthorizationDenied else cls()


def test_every_class_of_the_tree_is_classified():
    tree = {
        cls
        for _, cls in inspect.getmembers(oc, inspect.isclass)
        if issubclass(cls, oc.OAuthConnError)
    }
    assert tree == set(PERMANENT)


@pytest.mark.parametrize("cls", list(PERMANENT), ids=lambda cls: cls.__name__)
def test_classification(cls):
    error = make(cls)
    assert oc.is_permanent(error) is PERMANENT[cls]
    assert error.transient is not PERMANENT[cls]  # the older name says the same


def test_what_is_not_an_oauthconn_error_counts_as_temporary():
    assert oc.is_permanent(OSError("connection reset")) is False
    assert oc.is_permanent(ValueError("anything")) is False


#: what a caller does next -> the one code that says it
CATEGORIES = {
    "retry later: the provider failed": (oc.TemporarilyUnavailable, "provider_unavailable"),
    "retry shortly: busy here": (oc.Busy, "busy"),
    "someone must authorize again": (oc.ReauthorizationRequired, "needs_reauthorization"),
    "nobody authorized yet": (oc.NotConnected, "not_connected"),
    "fix the configuration": (oc.ConfigurationError, "invalid_configuration"),
}


@pytest.mark.parametrize(("cls", "code"), CATEGORIES.values(), ids=CATEGORIES.keys())
def test_each_category_has_its_own_code(cls, code):
    assert make(cls).code == code
    others = [other for other, _ in CATEGORIES.values() if other is not cls]
    assert all(other.code != code for other in others)


def test_busy_is_caught_as_temporarily_unavailable_and_answered_with_503():
    with pytest.raises(oc.TemporarilyUnavailable) as caught:
        raise oc.Busy(retry_after=3)
    assert caught.value.code == "busy" and caught.value.retry_after == 3
    assert isinstance(caught.value, oc.TokenUnavailable)
    assert status_for(caught.value) == 503


def test_a_provider_that_is_down_is_not_busy():
    error = oc.ProviderUnavailable(status=503)
    assert error.code == "provider_unavailable" and not isinstance(error, oc.Busy)
    assert status_for(error) == 503

"""The authorization response at the redirect URI (RFC 6749 §4.1.2, RFC 9207; SECURITY R16–R21,
§2.1).

:func:`parse_callback` only checks that the query is well formed; the flow layer then looks
the ``state`` up in the session (R9, R16) and calls :func:`check_issuer` before it trusts
anything else, error responses included (R17).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from oauthconn.exceptions import InvalidCallback, IssuerMismatch, clean_provider_text

#: R21: a generous cap; real codes and states are far shorter.
MAX_PARAMETER_LENGTH = 4096

#: RFC 6749 §3.1: a parameter must not appear more than once.
_SINGLE_VALUED = ("state", "code", "iss", "error", "error_description")


@dataclass(frozen=True)
class CallbackParams:
    """The parts of an authorization response oauthconn uses.

    ``code`` is ``""`` when absent, and also whenever ``error`` is set, so an error response
    can never be redeemed. ``iss`` is None when absent and ``""`` when sent empty (which then
    fails :func:`check_issuer`). ``error`` is None on success; ``error_description`` is
    cleaned and capped for display (RFC 6749 §4.1.2.1).
    """

    state: str
    code: str
    iss: str | None
    error: str | None
    error_description: str

    def __repr__(self) -> str:
        # The code is a credential until redeemed (T2 in the threat model): keep it out of logs.
        return (
            f"CallbackParams(state=<{len(self.state)} chars>, code={'<set>' if self.code else ''!r}"
            f", iss={self.iss!r}, error={self.error!r})"
        )


def parse_callback(query: Mapping[str, Sequence[str]]) -> CallbackParams:
    """Validate an authorization response's query (RFC 6749 §4.1.2, §4.1.2.1, SECURITY R21).

    ``query`` is a Django ``QueryDict`` or a ``dict[str, list[str]]``. Raises
    :class:`InvalidCallback` when ``state`` is missing or empty, a parameter is repeated,
    ``state``/``code``/``iss`` is not printable ASCII or longer than 4096 characters, or
    neither ``code`` nor ``error`` is present. Unknown parameters are ignored (§4.1.2).
    """
    values = {name: _single(query, name) for name in _SINGLE_VALUED}
    state = values["state"]
    if not state:
        raise InvalidCallback("The authorization response has no state parameter.")
    for name in ("state", "code", "iss"):
        _check_printable(name, values[name])
    error = clean_provider_text(values["error"], 64) or None
    code = values["code"] or ""
    if not code and error is None:
        raise InvalidCallback("The authorization response has neither a code nor an error.")
    return CallbackParams(
        state=state,
        code="" if error else code,
        iss=values["iss"],
        error=error,
        error_description=clean_provider_text(values["error_description"]),
    )


def named_states(query: Mapping[str, Sequence[str]]) -> list[str]:
    """Every non-empty ``state`` value in ``query``, however malformed the rest of it is.

    The flow ends the attempts these name before :func:`parse_callback` judges the response:
    a refused response must not leave its attempt usable for a later one (SECURITY R16).
    """
    getlist = getattr(query, "getlist", None)
    found = getlist("state") if getlist is not None else query.get("state", ())
    found = [found] if isinstance(found, str) else list(found)
    return [value for value in found if isinstance(value, str) and value]


def _single(query: Mapping[str, Sequence[str]], name: str) -> str | None:
    """The one value of ``name``, None when absent; InvalidCallback when repeated."""
    getlist = getattr(query, "getlist", None)
    # QueryDict.get() returns only the last value, which would hide a repetition.
    found = getlist(name) if getlist is not None else query.get(name, ())
    found = [found] if isinstance(found, str) else list(found)
    if len(found) > 1:
        raise InvalidCallback(f"The authorization response repeats the {name} parameter.")
    return found[0] if found else None


def _check_printable(name: str, value: str | None) -> None:
    if value is None:
        return
    if len(value) > MAX_PARAMETER_LENGTH:
        raise InvalidCallback(f"The {name} parameter of the authorization response is too long.")
    if not all("\x20" <= char <= "\x7e" for char in value):
        raise InvalidCallback(
            f"The {name} parameter of the authorization response has invalid characters."
        )


def check_issuer(params: CallbackParams, expected_issuer: str, *, required: bool) -> None:
    """Mix-up defense: compare the response's ``iss`` with the flow's issuer (RFC 9207 §2.4).

    - ``iss`` present: it must equal ``expected_issuer`` exactly (simple string comparison,
      no normalisation), otherwise :class:`IssuerMismatch`.
    - ``iss`` present but ``expected_issuer`` is ``""`` (the issuer is not known, e.g. a
      custom connection without discovery): :class:`IssuerMismatch`, because nothing can
      vouch for the value; configure the issuer, or the AS must not send ``iss``.
    - ``iss`` absent: :class:`IssuerMismatch` when ``required`` (the AS advertises
      ``authorization_response_iss_parameter_supported`` or the admin said so), else fine;
      the message then repeats the provider's ``error``, if it sent one.
    """
    if params.iss is None:
        if required:
            raise IssuerMismatch(_missing_issuer_message(params))
        return
    if not expected_issuer:
        raise IssuerMismatch(
            "The response names an issuer (iss) but the connection has no issuer "
            "configured to compare it with."
        )
    if params.iss != expected_issuer:
        raise IssuerMismatch()


def _missing_issuer_message(params: CallbackParams) -> str:
    """Say what the provider answered, if it answered an error, and why it was not trusted.

    Some servers (django-oauth-toolkit 3.x) add ``iss`` to success responses only; refusing
    their error responses is right (RFC 9207 §2.4), but the person should still learn what
    the provider said. ``error`` and ``error_description`` are already cleaned and capped.
    """
    if params.error is None:
        return "The response has no iss parameter, but this provider is known to send one."
    said = params.error + (f": {params.error_description}" if params.error_description else "")
    return (
        f"The provider answered {said}, but without the iss parameter it promised, "
        "so the answer was refused."
    )

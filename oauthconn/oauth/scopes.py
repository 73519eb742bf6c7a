"""Scope values as plain strings (RFC 6749 §3.3): reading them from untrusted input, joining.

A scope value is a list of space-delimited, case-sensitive scope tokens; each token is one or
more of the characters ``%x21 / %x23-5B / %x5D-7E`` (no space, ``"`` or ``\\``). A comma is
a legal character of a token, so only spaces separate them here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from oauthconn.exceptions import ScopeNotAllowed

_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")

#: Bounds for scopes read from a request: a real upgrade names a handful.
MAX_SCOPES = 50
MAX_SCOPE_LENGTH = 200


def parse_scopes(values: Iterable[str]) -> list[str]:
    """The scope tokens in ``values`` (each holds one or more, space separated), in order,
    without repeats. Raises :class:`ScopeNotAllowed` for a malformed token or too many."""
    found: list[str] = []
    for value in values:
        for token in value.split(" "):
            if not token:
                continue  # runs of spaces: RFC 6749 wants one, browsers and people type more
            if len(token) > MAX_SCOPE_LENGTH or not _SCOPE_TOKEN.fullmatch(token):
                raise ScopeNotAllowed("A scope may only hold printable ASCII, without spaces.")
            if token not in found:
                found.append(token)
    if len(found) > MAX_SCOPES:
        raise ScopeNotAllowed(f"At most {MAX_SCOPES} scopes can be requested at once.")
    return found


def union(*groups: Iterable[str]) -> list[str]:
    """The scopes of every group, first occurrence first (so the URL shows the connection's
    own scopes, then the added ones)."""
    return list(dict.fromkeys(scope for group in groups for scope in group))

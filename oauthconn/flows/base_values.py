"""A grant's values of its API base URL's fields, at the edges of an authorization (R62).

The rules are :mod:`oauthconn.base_url`'s; this adds what an authorization does with them:
typed values checked before an attempt is recorded, a refused token response's fresh tokens
revoked instead of left valid. Renewals use ``base_url.renewed_values`` (flows/outcomes.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from oauthconn.base_url import check_value, grant_fields, resolve, values_for_grant
from oauthconn.exceptions import GrantValueRefused
from oauthconn.flows.switching import discard
from oauthconn.models import Connection, PendingAuthorization
from oauthconn.oauth.token_response import TokenSet


def check_asked(template: str, asked: Mapping[str, str]) -> dict[str, str]:
    """The ``{ask:...}`` values of ``template`` from ``asked``, each checked, and the URL
    they make with sample token values checked too (GrantValueRefused, R62)."""
    fields = grant_fields(template)
    values = {f.name: check_value(f, asked.get(f.name)) for f in fields if f.source == "ask"}
    if values:
        samples = {f.name: "https://example.com" for f in fields if f.source == "token"}
        resolve(template, {**samples, **values})
    return values


def grant_values(
    connection: Connection, tokens: TokenSet, attempt: PendingAuthorization
) -> dict[str, str]:
    """The new grant's API base URL values (R62). Refused: the grant is refused, the stored
    one stays as it was, and the fresh tokens are revoked rather than left valid."""
    try:
        return values_for_grant(
            connection.api_base_url, response=tokens.extra, asked=attempt.base_values
        )
    except GrantValueRefused:
        discard(connection, tokens)
        raise

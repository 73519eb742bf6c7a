"""Incremental authorization: a grant without the scopes site code needs, scopes refused."""

from __future__ import annotations

from collections.abc import Sequence

from oauthconn.exceptions.base import OAuthConnError


class ScopesRequired(OAuthConnError):
    """The grant lacks scopes the caller needs: a person must authorize them (docs/scopes.md).

    ``missing`` are the scopes asked for and not granted; ``authorize_url`` is a path on this
    site (never the provider's URL, so it carries no state and no secret) whose page asks the
    person to confirm, then starts an authorization for the grant's scopes plus these. The
    current grant keeps working meanwhile.
    """

    code = "scopes_required"
    message = "The connection needs more scopes: authorize them first."
    permanent = True  # a person has to consent; retrying cannot help

    def __init__(
        self,
        message: str | None = None,
        *,
        missing: Sequence[str] = (),
        authorize_url: str = "",
        **kw: object,
    ) -> None:
        self.missing = list(missing)
        self.authorize_url = authorize_url
        if message is None and self.missing:
            message = f"{self.message} Missing: {' '.join(self.missing)}."
        super().__init__(message, missing=self.missing, **kw)


class ScopeNotAllowed(OAuthConnError, ValueError):
    """A scope that may not be requested for this connection: malformed (RFC 6749 §3.3), or
    neither among its scopes nor its optional scopes (R66)."""

    code = "scope_not_allowed"
    message = "That scope may not be requested for this connection."
    permanent = True

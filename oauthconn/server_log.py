"""Keep the callback's query out of the development server's request log.

``runserver`` logs every request line, query included, to the ``django.server`` logger at
INFO (WARNING/ERROR for 4xx/5xx). For the redirect URI that line holds the authorization code
and state. The filter rewrites that one line as ``GET /oauthconn/callback/<slug>/?[redacted]``;
every other line is left alone. Production servers (gunicorn, uWSGI, nginx) keep their own
access logs outside Python logging: configure those to drop the query of this path.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from django.urls import Resolver404, resolve

#: the view whose query holds secrets
CALLBACK_VIEW = "oauthconn:callback"


class RedactCallbackQuery(logging.Filter):
    """A ``django.server`` filter: the callback's request line loses its query."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args and isinstance(args[0], str) and "?" in args[0]:
            record.args = (redacted_request_line(args[0]), *args[1:])
        return True


def redacted_request_line(line: str) -> str:
    """``"GET /path?query HTTP/1.1"`` without the query when the path is the callback's."""
    method, _, rest = line.partition(" ")
    target, _, version = rest.partition(" ")
    path = urlsplit(target).path  # origin-form or absolute-form (RFC 9112 §3.2)
    try:
        if resolve(path).view_name != CALLBACK_VIEW:
            return line
    except Resolver404:
        return line
    return " ".join(part for part in (method, f"{path}?[redacted]", version) if part)


def install() -> None:
    """Attach the filter to ``django.server`` once (called from ``AppConfig.ready()``)."""
    server_logger = logging.getLogger("django.server")
    if not any(isinstance(f, RedactCallbackQuery) for f in server_logger.filters):
        server_logger.addFilter(RedactCallbackQuery())

"""Validators for a preset's parameters (a tenant, a domain): values that are pasted into URLs."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from oauthconn.http.policy import is_loopback_host

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~-]*\Z")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


# --- parameter validators -----------------------------------------------------------------------
# A parameter value is pasted into a URL, so a hostile one could move an endpoint (and with it
# the client secret and the tokens) to another host: "evil.example/x", "a@evil.example",
# "x#", "x?y=", "x:1". Every validator refuses those; most accept far less.


def path_segment(value: str) -> str:
    """The default validator: a tenant id or name, safe as a path segment or host label part.

    Letters, digits, ``.``, ``_``, ``~`` and ``-``, starting with a letter or digit; so no
    ``/ ? # @ :``, no ``%`` escapes, no whitespace and no ``..``.
    """
    if len(value) > 253 or not _SEGMENT.match(value):
        raise ValueError(
            f"{value!r} is not allowed: use letters, digits, '.', '_', '~' and '-' only "
            "(no '/', '?', '#', '@', ':' or spaces)."
        )
    return value


def host_name(value: str) -> str:
    """A DNS host name with at least two labels (``dev-123.okta.com``), returned lowercased.

    IP addresses and single labels such as ``localhost`` are refused: these parameters name a
    provider's public tenant host.
    """
    host = value.lower()
    labels = host.split(".")
    if (
        len(host) > 253
        or len(labels) < 2
        or not all(_LABEL.match(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValueError(f"{value!r} is not a host name such as 'example.okta.com'.")
    return host


def dns_label(value: str) -> str:
    """One DNS label (a subdomain such as ``acme`` in ``acme.zendesk.com``), lowercased."""
    label = value.lower()
    if not _LABEL.match(label):
        raise ValueError(f"{value!r} is not a subdomain: use letters, digits and '-' only.")
    return label


def local_origin(value: str) -> str:
    """An origin ``scheme://host[:port]`` for a server the site runs itself (the demo).

    This is the one validator that lets ``:`` and ``/`` through, because its value *is* the
    origin of every endpoint. It accepts ``https://`` with any host name, and ``http://`` only
    for loopback hosts (``localhost``, ``127.0.0.1``, ``[::1]``): a development server has no
    TLS, and loopback traffic never leaves the machine (compare RFC 8252 §8.3). No user info,
    path, query or fragment; a trailing ``/`` is dropped.
    """
    if any(ch.isspace() for ch in value) or "@" in value or "\\" in value:
        raise ValueError(f"{value!r} is not an origin such as 'http://localhost:8000'.")
    parts = urlsplit(value)
    try:
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        port_ok = False
    host = parts.hostname or ""
    if (
        parts.scheme not in ("http", "https")
        or not host
        or not port_ok
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "#" in value
        or "?" in value
    ):
        raise ValueError(f"{value!r} is not an origin such as 'http://localhost:8000'.")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise ValueError(f"{value!r}: http is allowed for a loopback host only; use https.")
    if parts.scheme == "https" and not is_loopback_host(host):
        host_name(host)
    return f"{parts.scheme}://{parts.netloc.lower()}"

"""Shared pieces: server processes, seeding the two databases, timing, and result sections."""

from __future__ import annotations

import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from authlib.deprecate import AuthlibDeprecationWarning
from django.contrib.auth import get_user_model
from django.utils import timezone

AS_DB = "authserver"
# requests-oauthlib refuses http:// unless told; every server here is on 127.0.0.1.
os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
# Authlib 1.9 prefers the httpx2 package and warns when it falls back to httpx; its own
# "always" filter is installed on import, so ours goes in front of it afterwards.
warnings.filterwarnings("ignore", category=AuthlibDeprecationWarning)
ROOT = Path(__file__).resolve().parent.parent


# --- results -------------------------------------------------------------------------------


@dataclass
class Table:
    """One Markdown table of a section."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)


@dataclass
class Section:
    """What one benchmark reports: tables for people, ``facts`` for the smoke test and JSON."""

    name: str
    title: str
    tables: list[Table] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    plots: dict[str, str] = field(default_factory=dict)


# --- timing --------------------------------------------------------------------------------


def sample(fn: Callable[[], object], iterations: int, warmup: int = 0) -> list[int]:
    """Nanoseconds per call of ``fn``, one sample per call, after ``warmup`` unmeasured calls."""
    for _ in range(warmup):
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        start = clock()
        fn()
        samples.append(clock() - start)
    return samples


def median_us(samples: list[int]) -> float:
    return round(statistics.median(samples) / 1000, 1)


def p99_us(samples: list[int]) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000, 1)


# --- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "benchmarks.settings", **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


class ServerProcess:
    """A server in a child process that prints ``ready`` once it listens."""

    def __init__(self, module: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, str(self.port)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"{module} did not start (exit code {self.proc.poll()}).")

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (user + system, Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


class AuthServer(ServerProcess):
    """django-oauth-toolkit in its own process, on its own database (see authserver.py)."""

    def __init__(self) -> None:
        super().__init__("benchmarks.authserver", child_env(BENCH_ROLE="authserver"))
        self.token_endpoint = f"{self.url}/demo-oauth/token/"

    def stats(self, reset: bool = False) -> dict[str, int]:
        method = "POST" if reset else "GET"
        return httpx.request(method, f"{self.url}/bench/stats/", timeout=10).json()

    def reset(self) -> None:
        self.stats(reset=True)


class FastTokenServer(ServerProcess):
    """A token endpoint that answers at once and counts (see token_server.py): the limit."""

    def __init__(self) -> None:
        super().__init__("benchmarks.token_server", child_env())
        self.token_endpoint = f"{self.url}/token"

    def stats(self, reset: bool = False) -> dict[str, int]:
        method = "POST" if reset else "GET"
        return httpx.request(method, f"{self.url}/stats", timeout=10).json()

    def reset(self) -> None:
        self.stats(reset=True)


class ResourceServer(ServerProcess):
    def __init__(self, token: str) -> None:
        self.token = token
        super().__init__("benchmarks.resource_server", child_env(BENCH_RESOURCE_TOKEN=token))


# --- seeding -------------------------------------------------------------------------------


def as_user():
    """The resource owner at the authorization server."""
    user, _ = get_user_model().objects.using(AS_DB).get_or_create(username="resource-owner")
    return user


def register_client(client_id: str) -> tuple[Any, str]:
    """A confidential client at the authorization server; returns (application, secret)."""
    from oauth2_provider.models import Application

    secret = secrets.token_urlsafe(24)
    app = Application(
        name=client_id,
        client_id=client_id,
        client_secret=secret,
        # Unhashed: DOT's default PBKDF2 check of the secret would dominate every token request
        # and measure the password hasher, not OAuth.
        hash_client_secret=False,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="http://127.0.0.1:8000/oauthconn/callback/",
        skip_authorization=True,
        algorithm="",
    )
    app.save(using=AS_DB)
    return app, secret


def issue_grants(app, count: int, *, expired: bool = True) -> list[tuple[str, str]]:
    """``count`` grants (access token, refresh token) issued by the server, as after consent."""
    from oauth2_provider.models import AccessToken, RefreshToken

    user = as_user()
    when = timezone.now() + (timedelta(seconds=-10) if expired else timedelta(hours=1))
    pairs = [(secrets.token_urlsafe(30), secrets.token_urlsafe(30)) for _ in range(count)]
    access = AccessToken.objects.using(AS_DB).bulk_create(
        AccessToken(user=user, application=app, token=a, expires=when, scope="read write")
        for a, _ in pairs
    )
    RefreshToken.objects.using(AS_DB).bulk_create(
        RefreshToken(user=user, application=app, token=r, access_token=at)
        for (_, r), at in zip(pairs, access, strict=True)
    )
    return pairs


def make_provider(auth: AuthServer | FastTokenServer, slug: str = "bench-as"):
    from oauthconn.models import Provider

    provider, _ = Provider.objects.update_or_create(
        slug=slug,
        defaults={
            "name": "Benchmark authorization server",
            "authorization_endpoint": f"{auth.url}/demo-oauth/authorize/",
            "token_endpoint": auth.token_endpoint,
            "revocation_endpoint": f"{auth.url}/demo-oauth/revoke_token/",
        },
    )
    return provider


def make_connections(
    provider,
    prefix: str,
    *,
    client_id: str,
    secret: str,
    grants: list[tuple[str, str]],
    api_base_url: str = "",
    expires_in: float = -10,
) -> list[str]:
    """One shared connection per grant, its token stored as after authorization; the slugs."""
    from oauthconn.models import Connection, Token

    connections = Connection.objects.bulk_create(
        Connection(
            slug=f"{prefix}-{i}",
            name=f"{prefix} {i}",
            provider=provider,
            client_id=client_id,
            client_secret=secret,
            scopes="read write",
            api_base_url=api_base_url,
        )
        for i in range(len(grants))
    )
    now = timezone.now()
    Token.objects.bulk_create(
        Token(
            connection=connection,
            access_token=access,
            refresh_token=refresh,
            expires_at=now + timedelta(seconds=expires_in),
            scope="read write",
            authorized_at=now,
        )
        for connection, (access, refresh) in zip(connections, grants, strict=True)
    )
    return [c.slug for c in connections]

"""Item 3, side by side: N concurrent callers hit an expired token at a server that rotates
refresh tokens (django-oauth-toolkit, ``ROTATE_REFRESH_TOKEN``, no grace period).

oauthconn: each caller does ``get_connection(slug).get("me/")``. Authlib and requests-oauthlib
are used as their documentation shows: the token is loaded from the database for each caller
(as each web request would), and an update hook saves a refreshed token back. All callers
start together at a barrier; a caller "holds a valid token" when the server's protected
resource answers 200.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable

from django.db import connection as db

from benchmarks.common import (
    Section,
    Table,
    issue_grants,
    make_connections,
    make_provider,
    register_client,
)
from oauthconn import get_connection

TABLE = "bench_library_token"


class Store:
    """The token of one library's integration, saved in the database as their docs suggest."""

    def __init__(self, name: str, token: dict) -> None:
        self.name = name
        with db.cursor() as cursor:
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (name varchar(64), token text)")
            cursor.execute(f"DELETE FROM {TABLE} WHERE name = %s", [name])
            cursor.execute(f"INSERT INTO {TABLE} VALUES (%s, %s)", [name, json.dumps(token)])

    def load(self) -> dict:
        with db.cursor() as cursor:
            cursor.execute(f"SELECT token FROM {TABLE} WHERE name = %s", [self.name])
            return json.loads(cursor.fetchone()[0])

    def save(self, token: dict, refresh_token: str | None = None, **_: object) -> None:
        # Authlib's example updates the row only if it still holds the refresh token just used.
        stored = self.load()
        if refresh_token is None or stored.get("refresh_token") == refresh_token:
            with db.cursor() as cursor:
                sql = f"UPDATE {TABLE} SET token = %s WHERE name = %s"
                cursor.execute(sql, [json.dumps(dict(token)), self.name])


def storm(callers: int, call: Callable[[], int], spread: float = 0.0) -> dict:
    """Run ``call`` in ``callers`` threads released together, the i-th after ``i/N * spread``
    seconds (requests arriving over a moment rather than at one instant)."""
    barrier = threading.Barrier(callers + 1)
    done: list[float] = []
    errors: Counter[str] = Counter()
    lock = threading.Lock()

    def worker(delay: float) -> None:
        barrier.wait()
        time.sleep(delay)
        try:
            status = call()
            with lock:
                if status == 200:
                    done.append(time.perf_counter())
                else:
                    errors[f"HTTP {status}"] += 1
        except Exception as err:  # the point is to count what the libraries raise
            with lock:
                errors[type(err).__name__] += 1
        finally:
            db.close()

    threads = [
        threading.Thread(target=worker, args=(i / callers * spread,)) for i in range(callers)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    all_ok = len(done) == callers
    elapsed = round((max(done) - start) * 1000, 1) if all_ok else None
    return {"valid": len(done), "errors": dict(errors), "ms_until_all_valid": elapsed}


class Scenario:
    """A fresh expired grant at the server for one library and one N."""

    def __init__(self, ctx, app, secret: str, label: str) -> None:
        self.ctx, self.app, self.secret, self.label = ctx, app, secret, label
        self.access, self.refresh = issue_grants(app, 1, expired=True)[0]
        self.me = f"{ctx.auth.url}/demo-api/me/"

    def token(self) -> dict:
        expired = time.time() - 10
        return {
            "access_token": self.access,
            "refresh_token": self.refresh,
            "token_type": "Bearer",
            "expires_at": expired,
            "expires_in": -10,
        }

    def oauthconn(self) -> Callable[[], int]:
        provider = make_provider(self.ctx.auth)
        (slug,) = make_connections(
            provider,
            self.label,
            client_id=self.app.client_id,
            secret=self.secret,
            grants=[(self.access, self.refresh)],
            api_base_url=f"{self.ctx.auth.url}/demo-api/",
        )
        return lambda: get_connection(slug).get("me/").status_code

    def authlib(self) -> Callable[[], int]:
        from authlib.integrations.httpx_client import OAuth2Client

        store = Store(self.label, self.token())

        def call() -> int:
            with OAuth2Client(
                self.app.client_id,
                self.secret,
                token=store.load(),
                token_endpoint=self.ctx.auth.token_endpoint,
                update_token=store.save,
            ) as client:
                return client.get(self.me).status_code

        return call

    def requests_oauthlib(self) -> Callable[[], int]:
        from requests_oauthlib import OAuth2Session

        store = Store(self.label, self.token())
        auth = {"client_id": self.app.client_id, "client_secret": self.secret}

        def call() -> int:
            with OAuth2Session(
                self.app.client_id,
                token=store.load(),
                auto_refresh_url=self.ctx.auth.token_endpoint,
                auto_refresh_kwargs=auth,
                token_updater=store.save,
            ) as session:
                return session.get(self.me).status_code

        return call


LIBRARIES = {
    "oauthconn": Scenario.oauthconn,
    "Authlib OAuth2Client + update_token": Scenario.authlib,
    "requests-oauthlib OAuth2Session + token_updater": Scenario.requests_oauthlib,
}


SPREADS = (0.0, 0.3)


def row(name: str, n: int, arrival: str, outcome: dict) -> list:
    errors = ", ".join(f"{k}: {v}" for k, v in outcome["errors"].items()) or "0"
    until = outcome["ms_until_all_valid"] or "never"
    return [name, n, arrival, outcome["token_requests"], errors, outcome["valid"], until]


def run(ctx) -> Section:
    app, secret = register_client("storm-libraries")
    sizes = [4] if ctx.smoke else [2, 10, 50]
    table = Table(
        "Threads hitting one expired token (refresh tokens rotate)",
        [
            "client",
            "N",
            "arrival",
            "token requests seen",
            "errors",
            "callers with a valid token",
            "ms until all hold a valid token",
        ],
    )
    facts: dict = {}
    for name, build in LIBRARIES.items():
        for n in sizes:
            for spread in SPREADS:
                call = build(Scenario(ctx, app, secret, f"storm-{len(facts)}"))
                ctx.auth.reset()
                outcome = storm(n, call, spread)
                outcome["token_requests"] = ctx.auth.stats().get("total", 0)
                arrival = f"over {spread * 1000:g} ms" if spread else "at once"
                facts[f"{name} N={n} {arrival}"] = outcome
                table.rows.append(row(name, n, arrival, outcome))
    section = Section("storm_libraries", "3. Refresh storm: oauthconn, Authlib, requests-oauthlib")
    section.tables.append(table)
    section.facts = facts
    section.notes.append(
        "“never”: some callers ended with an error (the server answered invalid_grant to a "
        "refresh token another caller had already rotated), so not all hold a valid token."
    )
    return section

"""Fast seeding for the pages benchmark: connections, tokens and events by the hundred thousand.

Rows are built in Python once per row (no model instances, no per-row encryption: every
token carries the same two ciphertexts) and written with PostgreSQL's ``COPY`` or, on
SQLite, ``executemany`` in batches. Ids are assigned here, so tokens and events point at
their connection without reading anything back; the sequences are reset afterwards.

The mix: one grant per connection, every tenth connection per-user (its grant belongs to the
benchmark's staff user), five providers, statuses mostly active with a few failing, needing
reauthorization and revoked, access tokens expiring over the next two days (a few due now),
and one event per connection spread over 30 days. Beside them, :func:`seed_popular` adds one
per-user connection with a grant for each of ``rows / 10`` users (users seeded too).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from itertools import islice

from django.contrib.auth import get_user_model
from django.core.management.color import no_style
from django.db import connection as db
from django.utils import timezone

PROVIDERS = 5
BATCH = 5000
KINDS = ["refreshed", "refreshed", "refreshed", "refresh_failed", "authorized", "revoked"]

CONNECTION_COLUMNS = (
    "id slug name provider_id grant_type client_id client_auth_method private_key_id "
    "published_jwks scopes extra_authorize_params extra_token_params api_base_url per_user "
    "test_path metadata created_at updated_at"
).split()
TOKEN_COLUMNS = (
    "id connection_id owner_id access_token refresh_token token_type expires_at scope subject "
    "claims status authorized_at refreshed_at last_error last_error_code failure_count "
    "revocation_pending updated_at"
).split()
EVENT_COLUMNS = "id connection_id owner_id kind message data created_at".split()


def status_of(n: int) -> str:
    if n % 997 == 1:
        return "failing"
    if n % 991 == 2:
        return "needs_reauth"
    if n % 983 == 3:
        return "revoked"
    return "active"


def ciphertexts() -> tuple[str, str]:
    """The access and refresh token every seeded grant carries, encrypted once."""
    from oauthconn.crypto import Sealed

    return (
        Sealed.seal("bench-access-token").ciphertext,
        Sealed.seal("bench-refresh-token").ciphertext,
    )


def connection_row(n: int, slug: str, name: str, provider: int, grant: str, per_user: bool, now):
    """A connection's columns (:data:`CONNECTION_COLUMNS`); the rest are the same for all."""
    return (n, slug, name, provider, grant, "bench", "client_secret_basic", "", "[]", "read",
            "{}", "{}", "", per_user, "", "{}", now, now)  # fmt: skip


def active_grant_row(token_id: int, connection_id: int, owner_id: int, n: int, now, sealed):
    """An active grant none of whose tokens is due (:data:`TOKEN_COLUMNS`)."""
    access, refresh = sealed
    expires = now + timedelta(minutes=60 + n % 2880)
    return (token_id, connection_id, owner_id, access, refresh, "Bearer", expires, "read", "",
            "{}", "active", now, now, "", "", 0, False, now)  # fmt: skip


def seed(start: int, stop: int, owner_id: int) -> None:
    """Connections ``start`` … ``stop - 1`` with their grant and one event each."""
    from oauthconn.models import Connection, Event, Provider, Token

    providers = ensure_providers()
    now = timezone.now()
    access, refresh = ciphertexts()

    def connections() -> Iterator[tuple]:
        for n in range(start, stop):
            # A name whose order is not the insertion order, as real names are.
            name = f"{(n * 7919) % 100_003:05d} connection {n}"
            grant = "client_credentials" if n % 7 == 0 else "authorization_code_pkce"
            yield connection_row(n, f"page-{n}", name, providers[n % PROVIDERS], grant,
                                 n % 10 == 0, now)  # fmt: skip

    def tokens() -> Iterator[tuple]:
        for n in range(start, stop):
            status = status_of(n)
            expires = now + timedelta(minutes=(n % 2880) - 5)
            yield (n, n, owner_id if n % 10 == 0 else None,
                   None if status == "revoked" else access, refresh, "Bearer", expires, "read",
                   "", "{}", status, now - timedelta(days=n % 60), now - timedelta(hours=n % 24),
                   "", "", 0, False, now)  # fmt: skip

    def events() -> Iterator[tuple]:
        span = timedelta(days=30) / max(stop - start, 1)
        for n in range(start, stop):
            yield (n, n, None, KINDS[n % len(KINDS)], "", "{}", now - span * (n - start))

    write(Connection, CONNECTION_COLUMNS, connections())
    if db.vendor == "postgresql":
        # Plans this session cached while the table was small (the foreign key's check, the
        # kept counts' trigger) would seq-scan it for every token row; ANALYZE replaces them,
        # as autovacuum would after a bulk load.
        with db.cursor() as cursor:
            cursor.execute("ANALYZE oauthconn_connection")
    write(Token, TOKEN_COLUMNS, tokens())
    write(Event, EVENT_COLUMNS, events())
    with db.cursor() as cursor:
        for sql in db.ops.sequence_reset_sql(no_style(), [Provider, Connection, Token, Event]):
            cursor.execute(sql)
        if db.vendor == "postgresql":
            # VACUUM too, as autovacuum does to a freshly loaded table within a minute
            # (PostgreSQL 13+): the measurements then do not depend on whether it got there
            # first (index-only scans need the pages marked all-visible).
            cursor.execute("VACUUM ANALYZE oauthconn_connection, oauthconn_token, oauthconn_event")


def seed_user_grants(
    start: int, stop: int, owner_id: int, lacking_every: int, id_offset: int
) -> None:
    """A grant of ``owner_id`` on the per-user connections among ``start`` … ``stop - 1``,
    but for one in ``lacking_every`` of them: the API's "not connected" filter for users who
    hold all but a few, or some, of the per-user connections. Ids are ``id_offset + n``,
    clear of :func:`seed`'s."""
    from oauthconn.models import Token

    now = timezone.now()
    sealed = ciphertexts()

    def tokens() -> Iterator[tuple]:
        for n in range(start, stop):
            if n % 10 == 0 and (n // 10) % lacking_every != 1:  # the first lacks one
                yield active_grant_row(id_offset + n, n, owner_id, n, now, sealed)

    write(Token, TOKEN_COLUMNS, tokens())
    if db.vendor == "postgresql":
        # The connections too: the triggers of migration 0019 updated their held_grants.
        with db.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE oauthconn_connection, oauthconn_token")


#: The popular per-user connection's id; its users' and grants' ids follow it.
POPULAR = 200_000_000
USER_COLUMNS = (
    "id password is_superuser username first_name last_name email is_staff is_active date_joined"
).split()


def seed_popular(start: int, stop: int, owner_id: int) -> None:
    """A per-user connection that everyone uses: grants ``start`` … ``stop - 1`` and their
    users (the first grant is ``owner_id``'s, so the staff user still lacks none). Its name
    sorts first (byte order), so it is on the first page of the lists; it is on pages of its
    own too (:func:`benchmarks.pages.pages`)."""
    from oauthconn.models import Connection, Token

    user_model = get_user_model()
    now = timezone.now()
    if start == 0:
        provider = ensure_providers()[0]
        row = connection_row(POPULAR, "popular", "0 popular per-user", provider,
                             "authorization_code_pkce", True, now)  # fmt: skip
        write(Connection, CONNECTION_COLUMNS, iter([row]))
    first_user = max(start, 1)
    write(user_model, USER_COLUMNS, (
        (POPULAR + n, "!", False, f"popular-{n}", "", "", "", False, True, now)
        for n in range(first_user, stop)
    ))  # fmt: skip
    sealed = ciphertexts()
    write(Token, TOKEN_COLUMNS, (
        active_grant_row(POPULAR + n, POPULAR, POPULAR + n if n else owner_id, n, now, sealed)
        for n in range(start, stop)
    ))  # fmt: skip
    with db.cursor() as cursor:
        for sql in db.ops.sequence_reset_sql(no_style(), [user_model, Connection, Token]):
            cursor.execute(sql)
        if db.vendor == "postgresql":
            users = user_model._meta.db_table
            cursor.execute(f"VACUUM ANALYZE {users}, oauthconn_connection, oauthconn_token")


def remove_user_grants(owner_id: int) -> None:
    """Undo :func:`seed_user_grants` (raw SQL: nothing points at those grants)."""
    with db.cursor() as cursor:
        cursor.execute("DELETE FROM oauthconn_token WHERE owner_id = %s", [owner_id])
        if db.vendor == "postgresql":
            cursor.execute("VACUUM ANALYZE oauthconn_connection, oauthconn_token")


def ensure_providers() -> list[int]:
    from oauthconn.models import Provider

    for i in range(PROVIDERS):
        Provider.objects.get_or_create(
            slug=f"page-provider-{i}",
            defaults={"name": f"Provider {i}", "token_endpoint": "https://p.example/token"},
        )
    return list(
        Provider.objects.filter(slug__startswith="page-provider-")
        .order_by("slug")
        .values_list("pk", flat=True)
    )


def write(model, columns: list[str], rows: Iterator[tuple]) -> None:
    table = model._meta.db_table
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join(["%s"] * len(columns))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        while batch := [tuple(adapt(v) for v in row) for row in islice(rows, BATCH)]:
            cursor.executemany(sql, batch)


def adapt(value):
    """SQLite stores datetimes as text in Django's format."""
    if hasattr(value, "tzinfo"):
        return db.ops.adapt_datetimefield_value(value)
    return value


def empty() -> None:
    """Remove every connection and what hangs off it (raw SQL: a million-row cascade in the
    ORM would take longer than the benchmark)."""
    children_first = [
        "oauthconn_notification",
        "oauthconn_event",
        "oauthconn_pendingrevocation",
        "oauthconn_pendingswitch",
        "oauthconn_pendingauthorization",
        "oauthconn_token",
        "oauthconn_connection",
    ]
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            # CASCADE: a table added later that points at a connection is emptied too.
            cursor.execute(f"TRUNCATE {', '.join(children_first)} CASCADE")
        else:
            for table in children_first:
                cursor.execute(f"DELETE FROM {table}")
        users = get_user_model()._meta.db_table
        cursor.execute(f"DELETE FROM {users} WHERE id > %s", [POPULAR])

"""Canary scan (SECURITY §3.2, R43): after a full life cycle with every logger at DEBUG, no
secret, token, code or verifier appears in any log record, page or error message."""

from __future__ import annotations

import logging
import secrets as random
import threading
from datetime import timedelta

import httpx
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer
from django.utils import timezone
from django.utils.log import AdminEmailHandler
from oauth2_provider.models import AccessToken, RefreshToken

from oauthconn import get_connection
from oauthconn.models import Provider, Token
from tests.conftest import consent, deliver, outcome, start
from tests.scripted_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)

#: the authorization server under test (oauthlib, django-oauth-toolkit) is the third party:
#: its own logs, and Django's records of the requests it serves, are not ours to judge
THIRD_PARTY_LOGGERS = ("oauthlib", "oauth2_provider")
THIRD_PARTY_PATHS = ("/demo-oauth/", "/demo-api/")


def ours(record: logging.LogRecord) -> bool:
    request = getattr(record, "request", None)
    path = getattr(request, "path", "")
    return not (record.name.startswith(THIRD_PARTY_LOGGERS) or path.startswith(THIRD_PARTY_PATHS))


def test_nothing_secret_reaches_logs_or_pages(staff_client, make_connection, as_log, caplog):
    caplog.set_level(logging.DEBUG)  # the root logger: every library's records
    connection = make_connection()
    query = consent(staff_client, start(staff_client, connection))
    page = deliver(staff_client, connection, query)
    secrets = {
        connection.client_secret.reveal(),
        query["code"][0],
        query["state"][0],
        as_log.to("/demo-oauth/token/")[0].form["code_verifier"][0],
    }
    Token.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    get_connection("crm").get("me/")
    replay = outcome(staff_client, deliver(staff_client, connection, query))  # an error path
    secrets |= set(AccessToken.objects.values_list("token", flat=True))
    secrets |= set(RefreshToken.objects.values_list("token", flat=True))

    pages = [
        staff_client.get(page["Location"]),
        replay,
        staff_client.get("/admin/oauthconn/token/"),
        staff_client.get(f"/admin/oauthconn/token/{Token.objects.get().pk}/change/"),
        staff_client.get("/admin/oauthconn/event/"),
        staff_client.get("/admin/oauthconn/connection/"),
    ]
    staff_client.post(f"/oauthconn/disconnect/{connection.slug}/")

    assert len(secrets) >= 6
    logged = "\n".join(r.getMessage() for r in caplog.records if ours(r))
    for secret in secrets:
        assert secret not in logged
        for response in pages:
            assert secret.encode() not in response.content


def test_error_messages_never_carry_what_was_sent(staff_client, make_connection):
    connection = make_connection()
    query = consent(staff_client, start(staff_client, connection))
    query["code"] = ["canary-code-4711"]
    response = outcome(staff_client, deliver(staff_client, connection, query))
    assert response.status_code == 502
    assert b"canary-code-4711" not in response.content
    event = connection.events.get(kind="authorization_failed")
    assert "canary-code-4711" not in event.message


# --- defect 2: the callback's code and state in no record, e-mail, page or Location -----------


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def as_text(record: logging.LogRecord) -> str:
    """Everything a handler could write: the message, the traceback, the request, the rest."""
    formatted = logging.Formatter("%(name)s %(levelname)s %(message)s").format(record)
    return "\n".join([formatted, repr(getattr(record, "request", None)), repr(vars(record))])


@pytest.fixture
def reports(settings, mailoutbox):
    """DEBUG off, every logger at DEBUG into a capturing handler, and Django's
    AdminEmailHandler (with the HTML report, frames' variables included) on every record of
    WARNING and above that is ours. Yields the capturing handler."""
    settings.DEBUG = False
    settings.ADMINS = [("Ops", "ops@example.com")]
    capture, mail = Capture(), AdminEmailHandler(include_html=True)
    mail.setLevel(logging.WARNING)
    mail.addFilter(ours)
    root = logging.getLogger()
    loggers = [
        root,
        *(x for x in root.manager.loggerDict.values() if isinstance(x, logging.Logger)),
    ]
    saved = [(x, x.level, x.disabled) for x in loggers]
    for each in loggers:
        each.setLevel(logging.DEBUG)
        each.disabled = False
        if each is root or not each.propagate:
            each.addHandler(capture)
            each.addHandler(mail)
    yield capture
    for each, level, disabled in saved:
        each.setLevel(level)
        each.disabled = disabled
        for handler in (capture, mail):
            each.removeHandler(handler)


def good_query(client, connection) -> dict:
    return consent(client, start(client, connection))


def success(client, connection):
    return [deliver(client, connection, good_query(client, connection))]


def denial(client, connection):
    state = good_query(client, connection)["state"]
    return [deliver(client, connection, {"error": "access_denied", "state": state})]


def forged(client, connection):
    good_query(client, connection)
    canary = {"code": f"forged-code-{random.token_hex(8)}", "state": random.token_hex(16)}
    return [deliver(client, connection, canary)]


def replayed(client, connection):
    query = good_query(client, connection)
    return [deliver(client, connection, query), deliver(client, connection, query)]


def malformed(client, connection):
    query = good_query(client, connection)
    return [deliver(client, connection, {**query, "code": [query["code"][0] + "\x00", "x"]})]


def duplicated(client, connection):
    query = good_query(client, connection)
    return [deliver(client, connection, {**query, "state": query["state"] * 2})]


SCENARIOS = [success, denial, forged, replayed, malformed, duplicated]

#: token endpoints that fail: a 500 without JSON, an HTML page, one that echoes the code, and
#: one that never answers in time
FAILING = {
    "500": Reply(status=500, body=b"Internal Server Error"),
    "html": Reply(
        status=502, body="<html><h1>Bad gateway</h1></html>", headers={"Content-Type": "text/html"}
    ),
    "echo": lambda request: Reply(
        status=400,
        body={
            "error": "invalid_grant",
            "error_description": f"unknown code {request.form()['code'][0]}",
        },
    ),
    "timeout": Reply(status=200, body={"access_token": "late-token-4711"}, delay=2),
}


def secrets_of(connection, client, as_log, scripted=None) -> set[str]:
    """Every secret the run produced: client secret, codes and states sent to us, verifiers
    and tokens (as the server issued them)."""
    found = {connection.client_secret.reveal(), "late-token-4711"}
    for response in client.sent:
        for name in ("code", "state"):
            found.update(v for v in response.get(name, []) if len(v) >= 8)
    requests = [r.form for r in as_log.to("/demo-oauth/token/")]
    requests += [r.form() for r in (scripted.requests if scripted else [])]
    for form in requests:
        found.update(form.get("code_verifier", []) + form.get("code", []))
    found |= set(AccessToken.objects.values_list("token", flat=True))
    found |= set(RefreshToken.objects.values_list("token", flat=True))
    return {s for s in found if s}


def assert_nothing_leaked(secrets, responses, client, capture, mailoutbox):
    pages = [r.content for r in responses]
    pages += [client.get(r["Location"]).content for r in responses]
    locations = [r["Location"] for r in responses]
    records = [as_text(r) for r in capture.records if ours(r)]
    mails = [m.body for m in mailoutbox]
    mails += [content for m in mailoutbox for content, _ in getattr(m, "alternatives", [])]
    assert records  # the run was observed
    for secret in secrets:
        assert not [r for r in records if secret in r], secret
        assert not [m for m in mails if secret in m], secret
        assert not [p for p in pages if secret.encode() in p], secret
        assert not [loc for loc in locations if secret in loc], secret


@pytest.fixture
def recording_client(staff_client):
    """The staff browser, remembering every query it sent to the callback."""
    staff_client.sent = []
    get = staff_client.get

    def recording_get(path, data=None, **extra):
        if path.startswith("/oauthconn/callback/"):
            staff_client.sent.append(
                {k: v if isinstance(v, list) else [v] for k, v in data.items()}
            )
        return get(path, data, **extra)

    staff_client.get = recording_get
    return staff_client


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_no_callback_secret_in_records_mails_pages_or_locations(
    recording_client, make_connection, as_log, reports, mailoutbox, scenario
):
    connection = make_connection()
    responses = scenario(recording_client, connection)

    assert all(r.status_code == 303 for r in responses)
    secrets = secrets_of(connection, recording_client, as_log)
    assert_nothing_leaked(secrets, responses, recording_client, reports, mailoutbox)


@pytest.mark.parametrize("failing", FAILING)
def test_no_callback_secret_leaks_when_the_token_endpoint_fails(
    recording_client,
    make_connection,
    as_log,
    reports,
    mailoutbox,
    scripted_server,
    settings,
    failing,
):
    settings.OAUTHCONN = {**settings.OAUTHCONN, "READ_TIMEOUT": 0.3, "REQUEST_DEADLINE": 1}
    scripted_server.add("/token", FAILING[failing])
    connection = make_connection()
    Provider.objects.update(token_endpoint=scripted_server.url("/token"))

    responses = success(recording_client, connection)

    assert len(scripted_server.requests) == 1
    page = recording_client.get(responses[0]["Location"])
    assert page.status_code in (502, 504)
    secrets = secrets_of(connection, recording_client, as_log, scripted_server)
    assert_nothing_leaked(secrets, responses, recording_client, reports, mailoutbox)
    assert not [m for m in mailoutbox if "/oauthconn/callback/" in m.body]


def test_the_development_server_log_shows_no_callback_query(make_connection, reports):
    """runserver's request line goes to "django.server" (pytest-django's live server is quiet)."""
    connection = make_connection()
    server = WSGIServer(("127.0.0.1", 0), WSGIRequestHandler)
    # runserver's handler class; the app without django.setup(), which would reset logging
    server.set_app(WSGIHandler())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    canary = {"code": f"code-{random.token_hex(8)}", "state": f"state-{random.token_hex(8)}"}
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/oauthconn/callback/{connection.slug}/"
        assert httpx.get(url, params=canary).status_code == 303
        assert httpx.get(url.replace("callback", "result"), params={"q": "kept"}).status_code
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    lines = [r.getMessage() for r in reports.records if r.name == "django.server"]
    assert f"GET /oauthconn/callback/{connection.slug}/?[redacted] HTTP/1.1" in lines[0]
    assert "q=kept" in lines[1]  # other paths keep their query
    server_side = [r for r in reports.records if not r.name.startswith(("httpx", "httpcore"))]
    for record in server_side:  # (the test's own httpx client logs the URL it requests)
        assert canary["code"] not in as_text(record) and canary["state"] not in as_text(record)

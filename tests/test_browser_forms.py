"""What a browser needs from the pages oauthconn renders, checked without one (issue 10).

Defect 1: under ``Referrer-Policy: no-referrer`` (a header or a ``<meta name="referrer">``)
browsers post forms with ``Origin: null`` and Django's CSRF check refuses them; the test client
sends no Origin, so only the policy itself can be checked here (tests/test_browser_buttons.py
presses the buttons). Only the callback and the redirect to a provider carry secrets in URLs:
those keep ``no-referrer``.

Defect 8: a provider with the default scope separator (one space) saves unchanged.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from oauthconn.models import ClientAuthMethod, Connection, GrantType, Provider, Token
from tests.conftest import consent, deliver, start

POLICY_META = re.compile(r'<meta\s+name="referrer"\s+content="([^"]*)"', re.IGNORECASE)


def effective_policy(response) -> str | None:
    """The referrer policy the browser applies to the page's forms: a meta tag wins."""
    meta = POLICY_META.search(response.content.decode())
    return meta.group(1) if meta else response.get("Referrer-Policy")


@pytest.fixture
def setup(db, django_user_model):
    """A provider, a shared connection with a token, a per-user one, an admin and a user."""
    provider = Provider.objects.create(
        slug="acme",
        name="Acme",
        authorization_endpoint="https://acme.example/authorize",
        token_endpoint="https://acme.example/token",
    )
    shared, personal = (
        Connection.objects.create(
            slug=slug,
            name=slug.title(),
            provider=provider,
            grant_type=GrantType.AUTHORIZATION_CODE_PKCE,
            client_id=f"client-{slug}",
            client_auth_method=ClientAuthMethod.NONE,
            per_user=per_user,
        )
        for slug, per_user in (("crm", False), ("demo-personal", True))
    )
    Token.objects.create(connection=shared, access_token="not-a-real-token")
    admin = django_user_model.objects.create_superuser("admin", "a@example.com", "pw")
    alice = django_user_model.objects.create_user("alice", "b@example.com", "pw")
    return provider, shared, admin, alice


def change(connection: Connection, name: str = "change") -> str:
    return reverse(f"admin:oauthconn_connection_{name}", args=[connection.pk])


# Each page with a POST form: who looks at it, and how (method, url from the setup).
PAGES = {
    "your connections": ("alice", "get", lambda p, c: reverse("oauthconn:my_connections")),
    "demo home (README snippet)": ("alice", "get", lambda p, c: "/"),
    "admin connection page": ("admin", "get", lambda p, c: change(c)),
    "admin disconnect confirmation": ("admin", "post", lambda p, c: change(c, "disconnect")),
    "admin wizard": ("admin", "get", lambda p, c: reverse("admin:oauthconn_connection_add")),
    "admin provider page": (
        "admin",
        "get",
        lambda p, c: reverse("admin:oauthconn_provider_change", args=[p.pk]),
    ),
}


@pytest.mark.parametrize("name", PAGES)
def test_pages_with_post_forms_let_the_browser_send_origin(name, setup, client):
    provider, shared, admin, alice = setup
    who, method, url = PAGES[name]
    client.force_login(admin if who == "admin" else alice)
    response = getattr(client, method)(url(provider, shared))
    assert response.status_code == 200
    assert 'method="post"' in response.content.decode()
    assert response.has_header("Referrer-Policy")
    assert effective_policy(response) != "no-referrer"


def test_a_refused_callback_and_its_result_page_send_no_referrer(setup, client):
    client.force_login(setup[3])
    response = client.get(reverse("oauthconn:callback", args=["demo-personal"]), {"state": "x"})
    assert response.status_code == 303
    assert effective_policy(response) == "no-referrer"
    result = client.get(response["Location"])
    assert result.status_code == 400
    assert effective_policy(result) == "no-referrer"


def test_the_callback_and_the_redirect_to_the_provider_send_no_referrer(
    make_connection, client, django_user_model
):
    connection = make_connection("drive", per_user=True)
    client.force_login(django_user_model.objects.create_user("alice"))
    redirect = client.post(reverse("oauthconn:start", args=["drive"]))
    assert redirect["Referrer-Policy"] == "no-referrer"
    callback = deliver(client, connection, consent(client, start(client, connection)))
    assert callback.status_code in (302, 303)
    assert callback["Referrer-Policy"] == "no-referrer"


class FormValues(HTMLParser):
    """What a browser submits from a page's forms: inputs, checked boxes, selected options
    and textareas (enough for the admin's change forms)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs) -> None:
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button"):
            if a.get("type") != "checkbox" or "checked" in a:
                self.values[name] = a.get("value") or ("on" if a.get("type") == "checkbox" else "")
        elif tag == "select":
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.values[self._select] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea, self.values[name] = name, ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("select", "textarea"):
            self._select = self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            # HTML drops one newline right after <textarea>; Django renders one there.
            first = not self.values[self._textarea]
            self.values[self._textarea] += data.removeprefix("\n") if first else data


def rendered_values(html: str) -> dict[str, str]:
    parser = FormValues()
    parser.feed(html)
    return parser.values


@pytest.mark.parametrize("separator", [" ", ","])
def test_an_unchanged_provider_saves(separator, setup, client):
    provider, _, admin, _ = setup
    Provider.objects.filter(pk=provider.pk).update(scope_separator=separator)
    client.force_login(admin)
    url = reverse("admin:oauthconn_provider_change", args=[provider.pk])
    data = rendered_values(client.get(url).content.decode())
    assert data["scope_separator"] == separator
    response = client.post(url, {**data, "_save": "Save"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    provider.refresh_from_db()
    assert provider.scope_separator == separator


def test_a_separator_set_through_the_api_stays_choosable(setup, client):
    provider, _, admin, _ = setup
    Provider.objects.filter(pk=provider.pk).update(scope_separator="+")
    client.force_login(admin)
    url = reverse("admin:oauthconn_provider_change", args=[provider.pk])
    data = rendered_values(client.get(url).content.decode())
    assert client.post(url, {**data, "name": "Acme 2"}).status_code == 302
    provider.refresh_from_db()
    assert (provider.name, provider.scope_separator) == ("Acme 2", "+")


def test_the_api_keeps_the_space_separator_on_an_unchanged_put(setup, client):
    provider, _, admin, _ = setup
    client.force_login(admin)
    url = reverse("oauthconn-api:provider-detail", args=[provider.pk])
    body = client.get(url).json()
    assert body["scope_separator"] == " "
    response = client.put(url, body, content_type="application/json")
    assert response.status_code == 200, response.json()
    provider.refresh_from_db()
    assert provider.scope_separator == " "

"""Every code block in README.md and docs/**/*.md runs as written where it says it runs.

Each ```python block is compiled, then run: a block whose first line names ``manage.py shell``
is pasted line by line into an interactive console (what ``manage.py shell`` without IPython
is), the others are executed as a module. A block that cannot run on its own (a fragment that
needs the reader's own objects) is preceded by ``<!-- not-run: reason -->``; keep those few.
Settings blocks are also checked: their ``OAUTHCONN`` passes oauthconn's system checks and their
``INSTALLED_APPS`` has every app oauthconn needs. ```django blocks are rendered by Django's
template engine.
"""

from __future__ import annotations

import code
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.template import RequestContext, Template
from django.test import RequestFactory

from oauthconn.checks import check_encryption_keys, check_redirect_base_url, check_unknown_settings
from tests.conftest import authorize

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(
    r"(?:<!--\s*not-run:\s*(?P<reason>.*?)\s*-->\s*\n)?^```(?P<lang>[a-z]*)\n(?P<code>.*?)^```",
    re.DOTALL | re.MULTILINE,
)
#: The most blocks that may be left unrun; raising it needs a reason in review.
MAX_NOT_RUN = 4
#: What the settings blocks may read from the environment (docs/install.md says so).
ENVIRONMENT = {"OAUTHCONN_ENCRYPTION_KEYS": "lWZ0PwLAt7hgZK5wbLp2y0Xc3L2Fxt1vg1l8Ya7oFb0="}
#: Apps a project needs in INSTALLED_APPS for oauthconn (docs/install.md, step 3).
REQUIRED_APPS = {
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "formtools",
    "oauthconn",
}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    code: str
    not_run: str | None

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def find_blocks() -> list[Block]:
    blocks = []
    for path in DOCUMENTS:
        text = path.read_text()
        for match in BLOCK.finditer(text):
            line = text.count("\n", 0, match.start("code"))  # the fence's line, 1-based
            blocks.append(Block(path, line, match["lang"], match["code"], match["reason"]))
    return blocks


BLOCKS = find_blocks()
PYTHON = [b for b in BLOCKS if b.lang == "python"]
RUNNABLE = [b for b in PYTHON if b.not_run is None]
TEMPLATES = [b for b in BLOCKS if b.lang == "django"]


def by_name(blocks: list[Block]):
    return pytest.mark.parametrize("block", blocks, ids=[b.name for b in blocks])


class PastedConsole(code.InteractiveConsole):
    """An interactive console that raises what the real one would only print."""

    def showsyntaxerror(self, filename=None, **kwargs) -> None:
        raise  # noqa: PLE0704 - called from the console's own except clause

    def showtraceback(self) -> None:
        raise  # noqa: PLE0704 - called from the console's own except clause


def paste(source: str, namespace: dict) -> None:
    """Feed ``source`` to an interactive console line by line, as pasting into a shell does."""
    console = PastedConsole(namespace)
    for line in source.splitlines():
        console.push(line)
    console.push("")  # the Enter that ends a last compound statement


@by_name(PYTHON)
def test_python_block_compiles(block: Block):
    compile(block.code, block.name, "exec")


def test_only_a_few_blocks_are_not_run_and_each_says_why():
    skipped = [b for b in PYTHON if b.not_run is not None]
    assert len(skipped) <= MAX_NOT_RUN, [b.name for b in skipped]
    assert all(b.not_run for b in skipped), "a not-run marker without a reason"


@pytest.fixture
def my_api(make_connection, staff_client):
    """The tour's connection: connected by an admin at the demo authorization server."""
    connection = make_connection("my-api")
    authorize(staff_client, connection)
    return connection


@by_name(RUNNABLE)
@pytest.mark.django_db(transaction=True)
def test_python_block_runs(block: Block, request, monkeypatch, settings):
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    if "get_connection(" in block.code:
        request.getfixturevalue("my_api")
    namespace: dict = {"__name__": "docs_block"}
    if "manage.py shell" in block.code.splitlines()[0]:
        paste(block.code, namespace)
    else:
        exec(compile(block.code, block.name, "exec"), namespace)
    check_settings(namespace, settings)


def check_settings(namespace: dict, settings) -> None:
    """A block that sets OAUTHCONN or INSTALLED_APPS must set them to something that works."""
    if "INSTALLED_APPS" in namespace:
        assert REQUIRED_APPS <= set(namespace["INSTALLED_APPS"])
    if "ENCRYPTION_KEYS" in namespace.get("OAUTHCONN", {}):
        settings.OAUTHCONN = namespace["OAUTHCONN"]
        checks = check_encryption_keys() + check_unknown_settings() + check_redirect_base_url()
        assert checks == []


@by_name(TEMPLATES)
def test_django_template_block_renders(block: Block):
    html = Template(block.code).render(RequestContext(RequestFactory().get("/")))
    assert "{%" not in html

"""The pytest plugin as an installed oauthconn provides it: found through its ``pytest11``
entry point, in another project's pytest run.

When the installed oauthconn's metadata already declares the entry point (``./scripts/test``
installs this checkout), the runs use it as it is. A virtualenv whose oauthconn was installed
before the plugin existed gets a ``dist-info`` on ``sys.path`` whose entry points are the ones
pyproject.toml declares: what pip writes when it installs this checkout (importlib.metadata
reads any dist-info on the path). Each run is a subprocess in an empty directory: no
conftest.py, only the plugin.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SITE_TEST = """
from importlib.metadata import entry_points

from oauthconn import get_connection


def test_the_fixture_comes_from_the_entry_point(oauthconn_provider):
    plugins = [ep for ep in entry_points(group="pytest11") if ep.name == "oauthconn"]
    assert [plugin.value for plugin in plugins] == ["oauthconn.testing.pytest_plugin"]
    oauthconn_provider.connect("crm", subject="acme")
    assert get_connection("crm").get("me").json()["sub"] == "acme"
"""


def declared_plugins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["entry-points"]["pytest11"]


def test_pyproject_registers_the_plugin():
    assert declared_plugins() == {"oauthconn": "oauthconn.testing.pytest_plugin"}


def installed_plugins() -> dict[str, str]:
    """The pytest11 entry points the installed oauthconn distribution declares."""
    try:
        found = metadata.distribution("oauthconn").entry_points
    except metadata.PackageNotFoundError:
        return {}
    return {ep.name: ep.value for ep in found if ep.group == "pytest11"}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """An empty project directory, and unless the installed oauthconn declares them already,
    a dist-info with pyproject's pytest11 entry points."""
    dist = tmp_path / "lib" / "oauthconn_plugin_check-0.dist-info"
    (tmp_path / "project").mkdir(parents=True)
    if installed_plugins() == declared_plugins():
        return tmp_path
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: oauthconn-plugin-check\n")
    lines = [f"{name} = {value}" for name, value in declared_plugins().items()]
    (dist / "entry_points.txt").write_text("[pytest11]\n" + "\n".join(lines) + "\n")
    return tmp_path


def run_pytest(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    # The child gets its own SQLite test database: never this run's file or PostgreSQL one.
    for name in ("SQLITE_TEST_FILE", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"):
        child_env.pop(name, None)
    child_env.update(env, PYTHONPATH=os.pathsep.join([str(site / "lib"), str(ROOT)]))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=site / "project",
        env=child_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_site_project_gets_the_fixture_from_the_entry_point(site):
    (site / "project" / "test_site.py").write_text(SITE_TEST)

    result = run_pytest(site, DJANGO_SETTINGS_MODULE="tests.settings")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_plugin_does_not_disturb_a_project_without_django(site):
    plain = (
        "def test_plain(pytestconfig):\n"
        "    assert pytestconfig.pluginmanager.has_plugin('oauthconn')\n"
    )
    (site / "project" / "test_plain.py").write_text(plain)

    result = run_pytest(site, "-p", "no:django")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout

"""Run the benchmarks and write the report: ``python -m benchmarks.run [--smoke] [--only NAME]``.

Writes ``latest.md``, ``latest.json`` and SVG plots to ``benchmarks/results/`` (or ``--out``).
Both databases are created afresh in that directory (the client's is ``DATABASE_URL`` when
set). ``--readme`` also copies the Markdown and plots into ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: name -> module with ``run(ctx) -> Section``; refresh_storm is the lifecycle benchmark.
BENCHMARKS = {
    "api_calls": "benchmarks.api_calls",
    "token_cost": "benchmarks.token_cost",
    "refresh_storm": "benchmarks.refresh_storm",
    "storm_libraries": "benchmarks.storm_libraries",
    "proactive": "benchmarks.proactive",
    "pages": "benchmarks.pages",
    "memory": "benchmarks.memory",
}


@dataclass
class Context:
    """What every benchmark gets: the mode, the authorization server, the output directory."""

    smoke: bool
    auth: object
    out: Path
    #: rows per table for the pages benchmark (``--rows``)
    rows: int = 100_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a few iterations of each")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), default=[])
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--rows", type=int, default=100_000, help="connections, tokens and events for pages"
    )
    parser.add_argument("--readme", action="store_true", help="copy the results into README.md")
    return parser.parse_args(argv)


def prepare(out: Path) -> None:
    """Fresh databases for this run; must happen before Django is set up."""
    out.mkdir(parents=True, exist_ok=True)
    os.environ["BENCH_DIR"] = str(out)
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    for path in out.glob("*.sqlite3*"):
        path.unlink()
    import django
    from django.core.management import call_command

    django.setup()
    create_database()
    for alias in ("default", "authserver"):
        call_command("migrate", database=alias, verbosity=0)
    if os.environ.get("DATABASE_URL"):
        call_command("flush", database="default", interactive=False, verbosity=0)


def create_database() -> None:
    """On PostgreSQL, create the database ``DATABASE_URL`` names when it does not exist."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    name = connection.settings_dict["NAME"]
    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')


def machine() -> dict[str, str]:
    from django.db import connection

    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {
        "date (UTC)": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "nproc": str(os.cpu_count()),
        "CPU": cpu,
        "Python": platform.python_version(),
        **{p: version(p) for p in ("Django", "httpx", "Authlib", "requests-oauthlib")},
        "django-oauth-toolkit": version("django-oauth-toolkit"),
        "client database": connection.vendor,
        "authorization server database": "sqlite (WAL), Django's threaded server",
        "proactive refresh limit": "benchmarks/token_server.py (stdlib, no database)",
    }


def run_one(name: str, ctx: Context):
    from benchmarks.common import Section

    try:
        module = importlib.import_module(BENCHMARKS[name])
    except ModuleNotFoundError as err:
        if err.name != BENCHMARKS[name]:
            raise
        return Section(name, name, notes=[f"{BENCHMARKS[name]} does not exist yet."])
    started = time.monotonic()
    try:
        section = module.run(ctx)
    except Exception:
        section = Section(name, name, facts={"error": traceback.format_exc()})
        section.notes.append("FAILED: see latest.json for the traceback.")
        traceback.print_exc()
    section.facts["seconds"] = round(time.monotonic() - started, 1)
    print(f"{name}: {section.facts['seconds']} s", file=sys.stderr, flush=True)
    return section


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    prepare(args.out)
    from benchmarks import report
    from benchmarks.common import AuthServer

    auth = AuthServer()
    try:
        ctx = Context(smoke=args.smoke, auth=auth, out=args.out, rows=args.rows)
        sections = [run_one(name, ctx) for name in args.only or list(BENCHMARKS)]
    finally:
        auth.stop()
    path = report.write(args.out, sections, machine(), args.smoke)
    if args.readme:
        update_readme(args.out, path.read_text())
    print(path)
    return 1 if any("error" in s.facts for s in sections) else 0


def update_readme(out: Path, text: str) -> None:
    """Replace the "Latest results" part of README.md; plots go to benchmarks/plots/."""
    plots = HERE / "plots"
    plots.mkdir(exist_ok=True)
    for svg in out.glob("*.svg"):
        shutil.copy(svg, plots / svg.name)
    readme = HERE / "README.md"
    head, marker, _ = readme.read_text().partition("<!-- latest-results -->")
    body = text.replace("](results/", "](plots/").replace("\n### ", "\n#### ")
    body = body.replace("## Machine", "### Machine", 1)
    readme.write_text(head + marker + "\n\n" + body)


if __name__ == "__main__":
    sys.exit(main())

"""A smoke run of every benchmark (a few iterations each) so they keep working.

Runs the one command, ``python -m benchmarks.run --smoke``, in a child process with its own
databases, then checks the report has its rows and the facts that are correctness, not speed:
the refresh storm sends one token request, proactive refresh refreshes each token once, the
admin's query count does not grow with the table. Nothing here is timed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests_oauthlib  # noqa: F401  (the bench extra: the benchmark compares against it)

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ["api_calls", "token_cost", "storm_libraries", "proactive", "pages", "memory"]


def bench_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    url = env.get("DATABASE_URL", "")
    if url.startswith(("postgres", "postgresql")):
        # A database of its own next to the suite's (the benchmark creates it if missing).
        env["DATABASE_URL"] = url.rstrip("/") + "_benchsmoke"
    return env


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--out", str(out)],
        cwd=ROOT,
        env=bench_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((out / "latest.json").read_text())
    return data["sections"], (out / "latest.md").read_text()


def test_every_benchmark_ran_and_is_in_the_report(report):
    sections, markdown = report
    for name in SECTIONS:
        assert "error" not in sections[name]["facts"], sections[name]["facts"].get("error")
        assert sections[name]["tables"][0]["rows"], name
        assert sections[name]["title"] in markdown
    assert "refresh_storm" in sections


def test_api_calls_reach_the_resource_server_and_a_valid_token_costs_no_query(report):
    facts = report[0]["api_calls"]["facts"]
    assert set(facts["statuses"].values()) == {200}
    assert len(facts["statuses"]) == 9  # with the plain requests.Session floor
    assert facts["queries_per_call"]["oauthconn conn.client()"] == 0
    assert facts["queries_per_call"]["oauthconn conn.get()"] == 0


def test_token_cost_queries(report):
    queries = report[0]["token_cost"]["facts"]["queries"]
    assert queries["conn.access_token, conn reused (in-memory)"] == 0
    # An unchanged grant: on SQLite no query (PRAGMA data_version says nothing changed), on
    # PostgreSQL one narrow query (the versions of the token, connection and provider rows).
    unchanged = 1 if bench_env().get("DATABASE_URL", "").startswith("postgres") else 0
    assert queries["get_connection(slug) alone"] == unchanged
    assert queries["get_connection(slug).access_token"] == unchanged
    assert queries["request: view without a connection (baseline)"] == 0


def test_oauthconn_storm_sends_one_token_request_and_every_caller_gets_a_token(report):
    facts = report[0]["storm_libraries"]["facts"]
    outcomes = {k: v for k, v in facts.items() if isinstance(v, dict)}
    rows = {k: v for k, v in outcomes.items() if k.startswith("oauthconn ")}
    assert len(rows) == 2
    for outcome in rows.values():
        assert outcome["token_requests"] == 1
        assert outcome["errors"] == {}
        assert outcome["ms_until_all_valid"] is not None
    libraries = {k: v for k, v in outcomes.items() if not k.startswith("oauthconn ")}
    assert len(libraries) == 4 and all(v["token_requests"] >= 1 for v in libraries.values())


def test_proactive_refresh_refreshes_each_due_token_once(report):
    facts = report[0]["proactive"]["facts"]
    count = facts["count"]
    fast, dot = facts["fast"], facts["dot"]
    for limit in (fast["limit_1"], fast["limit_2"], dot["limit_1"]):
        assert limit["failures"] == 0
        assert limit["token_requests"] == count
    # One run with --processes 2: on PostgreSQL only, where rows are claimed across processes.
    on_postgres = bench_env().get("DATABASE_URL", "").startswith("postgres")
    assert ("processes_2" in fast) is on_postgres
    commands = [fast["command_1"], fast["command_2"]]
    if on_postgres:
        commands.append(fast["processes_2"])
    for run in (*commands, dot["command_1"]):
        assert run["refreshed"] == count
        assert run["token_requests"] == count  # two copies never refresh the same token
        assert set(run["exit_codes"]) == {0}
    for run in commands:
        assert run["distinct_refresh_tokens"] == count  # the fast server saw each token once


def test_api_calls_compare_requests_oauthlib_with_plain_requests(report):
    facts = report[0]["api_calls"]["facts"]
    assert facts["statuses"]["raw requests.Session (requests' floor)"] == 200
    assert set(facts["oauthlib_to_requests"]) == {"median", "cpu"}


def test_admin_queries_do_not_grow_with_the_table(report):
    facts = report[0]["pages"]["facts"]
    pages = {k: v for k, v in facts.items() if "@" in k and not k.startswith(("command", "due"))}
    assert {v["result"] for v in pages.values()} == {200}
    constant = {k: v for k, v in facts.items() if k.endswith("constant queries")}
    assert len(constant) > 30 and all(constant.values()), constant


def test_memory_child_processes_made_their_calls(report):
    facts = report[0]["memory"]["facts"]
    for mode in ("raw httpx.Client", "oauthconn conn.get()", "oauthconn conn.client()"):
        assert facts[mode]["statuses"] == [200]
        assert facts[mode]["after"] >= facts[mode]["before"] > 0

"""The examples of docs/testing-your-site.md (and any README block that uses the test kit)
run as written: each ``test_*`` function with the fixtures it names, each ``TestCase`` class
with Django's runner. tests/test_docs_blocks.py only executes blocks, which for a block of
tests merely defines them."""

from __future__ import annotations

import ast
import inspect
import unittest

import pytest

from project import views
from tests.test_docs_blocks import PYTHON, ROOT, Block

KIT_BLOCKS = [b for b in PYTHON if "oauthconn_provider" in b.code or "FakeProviderMixin" in b.code]


def example_functions(block: Block) -> list[str]:
    tree = ast.parse(block.code)
    return [
        n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
    ]


def example_classes(block: Block) -> list[str]:
    tree = ast.parse(block.code)
    return [n.name for n in tree.body if isinstance(n, ast.ClassDef) and "Test" in n.name]


FUNCTIONS = [(b, name) for b in KIT_BLOCKS for name in example_functions(b)]
CLASSES = [(b, name) for b in KIT_BLOCKS for name in example_classes(b)]


def run_block(block: Block) -> dict:
    namespace: dict = {"__name__": "docs_block"}
    exec(compile(block.code, block.name, "exec"), namespace)
    return namespace


def test_the_guide_has_pytest_and_testcase_examples():
    guide = ROOT / "docs" / "testing-your-site.md"
    assert {b.path for b, _ in FUNCTIONS} >= {guide} and {b.path for b, _ in CLASSES} >= {guide}
    assert len(FUNCTIONS) >= 5


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("block", "name"), FUNCTIONS, ids=[f"{b.name}::{name}" for b, name in FUNCTIONS]
)
def test_example_test_passes(block: Block, name: str, request):
    function = run_block(block)[name]
    arguments = {
        arg: request.getfixturevalue(arg) for arg in inspect.signature(function).parameters
    }
    function(**arguments)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("block", "name"), CLASSES, ids=[f"{b.name}::{name}" for b, name in CLASSES]
)
def test_example_testcase_passes(block: Block, name: str):
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(run_block(block)[name])
    result = unittest.TestResult()
    suite.run(result)
    assert (result.testsRun, result.errors, result.failures) == (suite.countTestCases(), [], [])
    assert result.testsRun >= 1


def test_the_view_shown_is_the_demo_sites():
    shown = [b for b in PYTHON if "def crm_account(" in b.code]
    assert shown and all(inspect.getsource(views.crm_account) in b.code for b in shown)

"""The layering of DESIGN.md, checked from the source: imports point down only, no cycles.

Edges (views, admin, api, commands, client.py) may import flows; flows and the protocol layer
never import an edge; the protocol layer (``oauthconn/oauth``) never touches Django models.
The import graph is read from the AST of every module (imports inside functions included:
a lazy import only hides a cycle from the interpreter, not from the design), leaving out
``if TYPE_CHECKING:`` blocks, which never run.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import oauthconn

PACKAGE_DIR = Path(oauthconn.__file__).parent
EDGES = (
    "oauthconn.client",
    "oauthconn.views",
    "oauthconn.scope_views",
    "oauthconn.admin",
    "oauthconn.api",
    "oauthconn.management",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {
    module_name(path): path
    for path in sorted(PACKAGE_DIR.rglob("*.py"))
    if "migrations" not in path.parts
}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_lazy_reexport(node: ast.AST, parent: ast.AST) -> bool:
    # A package's module-level __getattr__ (PEP 562) re-exports public names on first use
    # (oauthconn.get_connection): the package root sits above every layer, so that import is
    # not a dependency of the modules that only read its constants (conf's __version__).
    return (
        isinstance(parent, ast.Module)
        and isinstance(node, ast.FunctionDef)
        and node.name == "__getattr__"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    for child in ast.iter_child_nodes(node):
        if _is_lazy_reexport(child, node):
            continue
        if isinstance(child, ast.If) and _is_type_checking(child):
            yield from (n for other in child.orelse for n in _import_nodes_in(other))
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _import_nodes(child)


def _import_nodes_in(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    yield from _import_nodes(node)


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imported_names(module: str) -> set[str]:
    """Every module ``module`` imports (absolute names, any package)."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    names: set[str] = set()
    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        base = _absolute(module, node)
        for alias in node.names:
            # ``from oauthconn import flows`` depends on the submodule; ``from oauthconn.client
            # import get_connection`` on the module that defines the name.
            submodule = f"{base}.{alias.name}"
            names.add(submodule if submodule in MODULES else base)
    return names


def internal_imports(module: str) -> set[str]:
    """The oauthconn modules ``module`` depends on (names that are not modules dropped)."""
    return {name for name in imported_names(module) if name in MODULES and name != module}


def import_cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    graph = {module: sorted(internal_imports(module)) for module in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return sorted(components)


def under(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


# --- the rules -----------------------------------------------------------------------------


def test_every_module_imports():
    for module in MODULES:
        importlib.import_module(module)
    on_disk = {m.name for m in pkgutil.walk_packages(oauthconn.__path__, "oauthconn.")}
    assert on_disk - {"oauthconn.migrations"} <= set(MODULES) | {
        m for m in on_disk if m.startswith("oauthconn.migrations.")
    }


@pytest.mark.parametrize("layer", ["oauthconn.flows", "oauthconn.oauth"])
def test_flows_and_protocol_never_import_an_edge(layer):
    offending = {
        module: sorted(name for name in imported_names(module) if under(name, *EDGES))
        for module in MODULES
        if under(module, layer)
    }
    assert {module: names for module, names in offending.items() if names} == {}


def test_the_protocol_layer_never_touches_django_models():
    offending = {
        module: sorted(
            name
            for name in imported_names(module)
            if name == "oauthconn.models" or under(name, "django.db") or name.endswith(".models")
        )
        for module in MODULES
        if under(module, "oauthconn.oauth")
    }
    assert {module: names for module, names in offending.items() if names} == {}


def test_no_import_cycles():
    assert import_cycles() == []


def test_nothing_in_oauthconn_depends_on_the_test_kit():
    # DESIGN.md: the kit depends on everything and nothing depends on it, so a site never
    # loads test code (or a fake provider) in production.
    offending = {
        module: sorted(
            name for name in internal_imports(module) if under(name, "oauthconn.testing")
        )
        for module in MODULES
        if not under(module, "oauthconn.testing")
    }
    assert {module: names for module, names in offending.items() if names} == {}

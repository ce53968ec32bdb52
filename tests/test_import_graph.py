"""The package's layers: the library never imports the harness, and no circles.

Read from the source (``ast``), not by importing: every ``import`` and ``from ...
import`` of a module of one top-level package of ``libtrace`` naming another.
The library (the tracer, the parsers, the flow layer, live records, pcap
analysis) must stand without the harness (QEMU guests, protocol services, the
kernel matrix, the differential check).  No two packages import each other when
their modules load; an import made when a function runs that goes back up a
layer is listed by name (the tracer's ``records()`` convenience, which builds
on the records layer above it).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "libtrace"
LIBRARY = frozenset({"tracer", "parsers", "flows", "records", "pcap", "bpf"})
HARNESS = frozenset({"vm", "services", "matrix", "check"})
#: Imports made when a function runs, from a package up to one that builds on it.
CALL_TIME_UPWARD = frozenset({("tracer", "records")})


def _runtime_nodes(tree: ast.AST, *, in_functions: bool) -> list[ast.AST]:
    """The nodes of ``tree`` that run: not under ``if TYPE_CHECKING``, and (unless
    ``in_functions``) not inside a function body."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                todo.extend(child.orelse)
                continue
            if not in_functions and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            todo.append(child)
    return out


def _imports(*, in_functions: bool = True) -> dict[tuple[str, str], set[str]]:
    """(importing package, imported package) -> the importing files; with
    ``in_functions=False``, only the imports made when the modules load."""
    edges: dict[tuple[str, str], set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        package = parts[0]
        where = ["libtrace", *parts] if path.name != "__init__.py" else ["libtrace", *parts[:-1]]
        here = where[:-1] if path.name != "__init__.py" else where
        for node in _runtime_nodes(ast.parse(path.read_text()), in_functions=in_functions):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                module = ".".join([*base, node.module] if node.module else base)
                names = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                target = name.split(".")
                if target[0] == "libtrace" and len(target) > 1 and target[1] != package:
                    edges.setdefault((package, target[1]), set()).add(str(path))
    return edges


def test_the_library_does_not_import_the_harness() -> None:
    arrows = {edge: sorted(files) for edge, files in _imports().items()
              if edge[0] in LIBRARY and edge[1] in HARNESS}  # fmt: skip
    assert arrows == {}


def test_no_two_packages_import_each_other_when_they_load() -> None:
    edges = _imports(in_functions=False)
    circles = {tuple(sorted(edge)) for edge in edges if edge[::-1] in edges}
    assert circles == set()


def test_only_the_named_call_time_imports_go_back_up() -> None:
    loading = _imports(in_functions=False)
    upward = {edge for edge in _imports() if edge not in loading and edge[::-1] in loading}
    assert upward == CALL_TIME_UPWARD


def test_the_reader_sees_imports() -> None:
    """The check above reads what it should: known arrows are found."""
    edges = _imports()
    assert ("pcap", "parsers") in edges and ("services", "pcap") in edges
    assert ("matrix", "vm") in edges

"""The package's layers: the library never imports the harness, and circles are known.

Read from the source (``ast``), not by importing: every ``import`` and ``from ...
import`` of a module of one top-level package of ``libtrace`` naming another.
The library (the tracer, the parsers, live records, pcap analysis) must stand
without the harness (QEMU guests, protocol services, the kernel matrix, the
differential check).  The circles between library packages that remain are
listed by name: the flow layer of issue 14 removes them, and a new one fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "libtrace"
LIBRARY = frozenset({"tracer", "parsers", "flows", "records", "pcap", "bpf"})
HARNESS = frozenset({"vm", "services", "matrix", "check"})
#: Circles still there (records/_conversation is shared with pcap, and pcap's chunk
#: with records; the tracer's records() imports records back).
KNOWN_CIRCLES = frozenset({("pcap", "records"), ("records", "tracer")})


def _imports() -> dict[tuple[str, str], set[str]]:
    """(importing package, imported package) -> the importing files."""
    edges: dict[tuple[str, str], set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        package = parts[0]
        where = ["libtrace", *parts] if path.name != "__init__.py" else ["libtrace", *parts[:-1]]
        here = where[:-1] if path.name != "__init__.py" else where
        for node in ast.walk(ast.parse(path.read_text())):
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


def test_only_the_known_circles_remain() -> None:
    edges = _imports()
    circles = {tuple(sorted(edge)) for edge in edges if edge[::-1] in edges}
    assert circles == KNOWN_CIRCLES


def test_the_reader_sees_imports() -> None:
    """The check above reads what it should: known arrows are found."""
    edges = _imports()
    assert ("pcap", "parsers") in edges and ("services", "pcap") in edges
    assert ("matrix", "vm") in edges

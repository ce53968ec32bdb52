"""The package's layers: the library never imports the harness, and circles are known.

Read from the source (``ast``), not by importing: every ``import`` and ``from ...
import`` of a module of one top-level package of ``libtrace`` naming another.
The library (the tracer, the parsers, the flow layer, live records, pcap
analysis) must stand without the harness (QEMU guests, protocol services, the
kernel matrix, the differential check), and the harness shares what it knows
about the machine (apt, the cache, external tools, Go toolchains) through the
host layer below it, which imports neither.  No package reaches into another's
private modules or names (within one package, ``tracer/golang`` using
``tracer._libbpf``, privacy is the package's own).  No two packages import each
other when their modules load; an import made when a function runs that goes
back up a layer is listed by name (the tracer's ``records()`` convenience,
which builds on the records layer above it, and writes pcapng with pcap's writer).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "libtrace"
LIBRARY = frozenset({"tracer", "parsers", "flows", "records", "pcap", "bpf"})
HARNESS = frozenset({"vm", "services", "matrix", "check"})
#: Below the harness, beside the library: what the harness shares about the machine.
HOST = frozenset({"host"})
#: Imports made when a function runs, from a package up to one that builds on it.
CALL_TIME_UPWARD = frozenset({("tracer", "records"), ("tracer", "pcap")})


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


def _imported(
    path: Path, root: Path = PACKAGE, *, in_functions: bool = True
) -> Iterator[tuple[str, list[str]]]:
    """(imported module, the names imported from it, if any) per import of ``path``
    (with ``in_functions=False``, only those made when the module loads)."""
    parts = path.relative_to(root).with_suffix("").parts
    where = ["libtrace", *parts] if path.name != "__init__.py" else ["libtrace", *parts[:-1]]
    here = where[:-1] if path.name != "__init__.py" else where
    for node in _runtime_nodes(ast.parse(path.read_text()), in_functions=in_functions):
        if isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            yield module, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


def _imports(*, in_functions: bool = True) -> dict[tuple[str, str], set[str]]:
    """(importing package, imported package) -> the importing files; with
    ``in_functions=False``, only the imports made when the modules load."""
    edges: dict[tuple[str, str], set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        package = path.relative_to(PACKAGE).parts[0]
        for module, names in _imported(path, in_functions=in_functions):
            # "from ..tracer import x" names the module; "from .. import records" the package.
            for name in [module] if module != "libtrace" else [f"libtrace.{n}" for n in names]:
                target = name.split(".")
                if target[0] == "libtrace" and len(target) > 1 and target[1] != package:
                    edges.setdefault((package, target[1]), set()).add(str(path))
    return edges


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_imports(root: Path = PACKAGE) -> set[tuple[str, str]]:
    """(importing file, imported name) for every private module or name (``_x``)
    that a module of one top-level package (or module, like ``cli.py``) of
    ``libtrace`` imports from another.  Within a package (``tracer/golang``
    using ``tracer._libbpf``) privacy is the package's own business."""
    found = set()
    for path in root.rglob("*.py"):
        relative = path.relative_to(root)
        for module, names in _imported(path, root):
            if module.split(".")[0] != "libtrace":
                continue
            for full in [f"{module}.{n}" for n in names] or [module]:
                inside = full.split(".")[1:]  # the path below libtrace
                if not inside or inside[0] == relative.parts[0]:
                    continue
                if any(_is_private(part) for part in inside):
                    found.add((relative.as_posix(), full))
    return found


def test_the_library_does_not_import_the_harness_or_the_host() -> None:
    arrows = {edge: sorted(files) for edge, files in _imports().items()
              if edge[0] in LIBRARY and edge[1] in HARNESS | HOST}  # fmt: skip
    assert arrows == {}


def test_the_host_sits_below_the_harness() -> None:
    """The harness imports the host; the host imports neither the harness nor the library."""
    edges = _imports()
    below = {edge: sorted(files) for edge, files in edges.items()
             if edge[0] in HOST and edge[1] in HARNESS | LIBRARY}  # fmt: skip
    assert below == {}
    users = {importer for importer, imported in edges if imported in HOST}
    assert users <= HARNESS
    assert {"vm", "services", "matrix"} <= users


def test_no_two_packages_import_each_other_when_they_load() -> None:
    edges = _imports(in_functions=False)
    circles = {tuple(sorted(edge)) for edge in edges if edge[::-1] in edges}
    assert circles == set()


def test_only_the_named_call_time_imports_go_back_up() -> None:
    loading = _imports(in_functions=False)
    upward = {edge for edge in _imports() if edge not in loading and edge[::-1] in loading}
    assert upward == CALL_TIME_UPWARD


def test_no_package_imports_another_packages_private_names() -> None:
    """Make the name public in its own package (export it from its ``__init__``,
    or give its module a public name), or move it where it belongs."""
    assert _private_imports() == set()


def test_the_reader_sees_imports() -> None:
    """The checks above read what they should: known arrows are found."""
    edges = _imports()
    assert ("pcap", "parsers") in edges and ("services", "pcap") in edges
    assert ("matrix", "vm") in edges and ("vm", "host") in edges


def test_the_reader_sees_private_imports(tmp_path: Path) -> None:
    """Each form of a private import across packages is caught; within a package,
    and of public names, none is."""
    sources = {
        "check/a.py": "from ..services._errors import failure\n",
        "check/b.py": "from ..tracer import _libbpf\n",
        "check/c.py": "import libtrace.vm._apt\n",
        "check/d.py": "from libtrace.services import _dns\n",
        "check/e.py": "from libtrace.vm.kernels import _candidates\n",
        "check/sub/f.py": "from ...vm._errors import KernelNotFoundError\n",
        "tracer/golang/g.py": "from .. import _libbpf\n",
        "check/h.py": "from ..services import failure\nfrom . import _run\n",
        "check/i.py": "from ..vm import kernels\nimport libtrace.host.apt\n",
    }
    for name, text in sources.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    caught = {file for file, _ in _private_imports(tmp_path)}
    assert caught == {"check/a.py", "check/b.py", "check/c.py", "check/d.py", "check/e.py",
                      "check/sub/f.py"}  # fmt: skip

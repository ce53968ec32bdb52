"""The Python side of ``socket_trace.h``, generated from the header itself.

The header is the one source of the event and configuration layout: the BPF
programs and the compiled decoder include it, and ``libtrace/tracer/_layout.py``
(ctypes structures, enums, flags and constants) is generated from it by::

    python -m libtrace.bpf.layout          # rewrites libtrace/tracer/_layout.py

so that a field, an enum member or a flag is added in one place.  clang reads
the header (its JSON AST gives the structs' fields and the enums' values, with
their line numbers); the ``#define`` lines are read as text, since the AST keeps
no macros.  Each trailing ``/* comment */`` becomes the name's doc comment.
``tests/bpf/test_layout.py`` checks that the generated module is current.

Naming: ``struct lt_conn_key`` becomes ``RawConnKey``, ``enum lt_event_type``
``EventType`` with its members' common prefix dropped, the ``LT_FLAG_*``
defines one ``EventFlag``; other defines keep their names.  An enum with an
``UNKNOWN`` member maps values this version does not know to it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .build import SOURCE_DIR, BuildError

HEADER = SOURCE_DIR / "socket_trace.h"
GENERATED = SOURCE_DIR.parent / "tracer" / "_layout.py"
#: Defines with this prefix become the members of one IntFlag.
FLAG_PREFIX = "LT_FLAG_"
FLAG_CLASS = "EventFlag"

#: The header's fixed-width types in ctypes.
CTYPES = {
    "__u8": "ctypes.c_uint8", "__u16": "ctypes.c_uint16", "__u32": "ctypes.c_uint32",
    "__u64": "ctypes.c_uint64", "__s8": "ctypes.c_int8", "__s16": "ctypes.c_int16",
    "__s32": "ctypes.c_int32", "__s64": "ctypes.c_int64", "char": "ctypes.c_char",
}  # fmt: skip
_ARRAY = re.compile(r"^(\w+) ?\[(\d+)\]$")
_DEFINE = re.compile(r"^#define\s+(\w+)\s+(\S+)")
_COMMENT = re.compile(r"/\*(.*?)(\*/|$)")


@dataclass(frozen=True)
class Item:
    name: str  #: in Python
    value: str  #: Python text: an integer, or a ctypes type
    doc: str
    c_name: str  #: in the header


@dataclass(frozen=True)
class Group:
    kind: str  #: "struct", "enum" or "flag"
    c_name: str
    name: str
    items: tuple[Item, ...]


def _camel(c_name: str) -> str:
    return "".join(part.capitalize() for part in c_name.removeprefix("lt_").split("_"))


def _doc(lines: list[str], line: int) -> str:
    """The trailing comment on a line of the header (1-based), or ""."""
    match = _COMMENT.search(lines[line - 1])
    return " ".join(match.group(1).split()) if match else ""


def _ctype(qual_type: str) -> str:
    array = _ARRAY.match(qual_type)
    if array:
        return f"{CTYPES[array.group(1)]} * {array.group(2)}"
    return CTYPES[qual_type]


def _ast(header: Path, clang: str) -> list[dict[str, Any]]:
    """The header's top-level declarations, from clang's JSON AST."""
    if shutil.which(clang) is None:
        raise BuildError(f"{clang} not found: install clang (scripts/install-deps.sh)")
    source = f'#include <linux/types.h>\n#include "{header.name}"\n'
    proc = subprocess.run(
        [clang, "-x", "c", "-fsyntax-only", "-Xclang", "-ast-dump=json", f"-I{header.parent}", "-"],
        input=source, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BuildError(f"clang could not read {header}: {proc.stderr.strip()}")
    nodes: list[dict[str, Any]] = json.loads(proc.stdout)["inner"]
    # clang names a node's file only where it changes, and the header comes
    # last: its declarations are those from the first that names it on.
    first = next(i for i, node in enumerate(nodes)
                 if node.get("loc", {}).get("file", "").endswith(header.name))  # fmt: skip
    return nodes[first:]


def _enum(node: dict[str, Any], lines: list[str]) -> Group:
    members, value = [], -1
    for member in node["inner"]:
        explicit = [n for n in member.get("inner", []) if "value" in n]
        value = int(explicit[0]["value"]) if explicit else value + 1
        members.append((member["name"], value, _doc(lines, member["loc"]["line"])))
    prefix = _common_prefix([name for name, _, _ in members])
    items = tuple(Item(name.removeprefix(prefix), str(value), doc, name)
                  for name, value, doc in members)  # fmt: skip
    return Group("enum", f"enum {node['name']}", _camel(node["name"]), items)


def _common_prefix(names: list[str]) -> str:
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    return prefix[: prefix.rfind("_") + 1]  # whole words only


def _struct(node: dict[str, Any], lines: list[str]) -> Group:
    items = tuple(Item(field["name"], _ctype(field["type"]["qualType"]),
                       _doc(lines, field["loc"]["line"]), field["name"])
                  for field in node["inner"])  # fmt: skip
    return Group("struct", f"struct {node['name']}", "Raw" + _camel(node["name"]), items)


def _block_above(lines: list[str], line: int) -> str:
    """The comment block right above a line of the header (1-based), or ""."""
    end = line - 2
    if end < 0 or not lines[end].rstrip().endswith("*/"):
        return ""
    start = end
    while start > 0 and "/*" not in lines[start]:
        start -= 1
    text = " ".join(lines[start : end + 1]).replace("/*", " ").replace("*/", " ")
    return " ".join(text.replace(" * ", " ").split())


def _defines(lines: list[str]) -> tuple[list[Item], list[Item]]:
    """The header's valued defines: (constants, flags)."""
    constants, flags = [], []
    for number, text in enumerate(lines, 1):
        match = _DEFINE.match(text)
        if match:
            name, value = match.groups()
            doc = _doc(lines, number) or _block_above(lines, number)
            if name.startswith(FLAG_PREFIX):
                flags.append(Item(name.removeprefix(FLAG_PREFIX), hex(int(value, 0)), doc, name))
            else:
                constants.append(Item(name, str(int(value, 0)), doc, name))
    return constants, flags


def read_header(header: Path = HEADER, clang: str = "clang") -> tuple[list[Item], list[Group]]:
    """The header's constants, and its enums, flags and structs in order."""
    lines = header.read_text().splitlines()
    constants, flags = _defines(lines)
    groups = [
        _enum(node, lines) if node["kind"] == "EnumDecl" else _struct(node, lines)
        for node in _ast(header, clang)
        if node["kind"] in ("EnumDecl", "RecordDecl") and "inner" in node
    ]
    groups.insert(0, Group("flag", "LT_FLAG_*", FLAG_CLASS, tuple(flags)))
    return constants, groups


def _comment(doc: str, indent: str) -> list[str]:
    if not doc:
        return []
    return textwrap.wrap(doc, 100 - len(indent) - 3, initial_indent=f"{indent}#: ",
                         subsequent_indent=f"{indent}#: ")  # fmt: skip


_BASES = {"enum": "enum.IntEnum", "flag": "enum.IntFlag", "struct": "ctypes.Structure"}


def _group(group: Group) -> list[str]:
    out = ["", "", f"class {group.name}({_BASES[group.kind]}):"]
    out += [f'    """``{group.c_name}``."""', ""]
    if group.kind == "struct":
        out.append("    _fields_ = [")
        for item in group.items:
            out += _comment(item.doc, "        ")
            out.append(f'        ("{item.name}", {item.value}),')
        out.append("    ]")
        return out
    for item in group.items:
        out += _comment(item.doc, "    ")
        out.append(f"    {item.name} = {item.value}")
    if any(item.name == "UNKNOWN" for item in group.items):
        out += ["", "    @classmethod", f"    def _missing_(cls, value: object) -> {group.name}:",
                "        return cls.UNKNOWN"]  # fmt: skip
    return out


def generate(header: Path = HEADER, clang: str = "clang") -> str:
    """The text of ``libtrace/tracer/_layout.py``."""
    constants, groups = read_header(header, clang)
    out = [
        f'"""The layout of ``{header.name}`` in Python: generated, do not edit.',
        "",
        "Edit the header, then run ``python -m libtrace.bpf.layout`` (see that module).",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import ctypes",
        "import enum",
        "",
    ]
    for item in constants:
        out += _comment(item.doc, "")
        out.append(f"{item.name} = {item.value}")
    for group in groups:
        out += _group(group)
    return "\n".join(out) + "\n"


def main() -> int:
    try:
        text = generate()
    except BuildError as exc:
        print(f"libtrace.bpf.layout: {exc}", file=sys.stderr)
        return 1
    GENERATED.write_text(text)
    print(f"wrote {GENERATED}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

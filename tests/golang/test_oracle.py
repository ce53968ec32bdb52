"""The inspector against the toolchain's own knowledge, for every Debian Go toolchain.

Oracles: ``go version -m`` (version, main package, module), ``go tool nm``
(function addresses, for every function of the pc-line table), ``go tool
objdump`` (RET addresses, and the bytes at the reported file offset), the
ELF header via ``readelf``-free checks (PIE), and, for stripped builds, the
unstripped build of the same source (stripping must not move code).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

from libtrace.host.go_toolchains import go_tool
from libtrace.tracer.golang import TLS_FUNCTIONS, TLS_READ, GoBinary, inspect_binary
from libtrace.tracer.golang._buildinfo import version_tuple
from libtrace.tracer.golang._image import Image
from libtrace.tracer.golang._offsets import TABLE
from libtrace.tracer.golang._pclntab import locate

from .conftest import go_binary, go_versions

pytestmark = pytest.mark.go_toolchain

PROGRAMS = ("https_server", "https_client")
VERSIONS = go_versions()
#: PIE is checked on the oldest, a middle and the newest toolchain (the layouts differ).
PIE_VERSIONS = tuple(v for v in VERSIONS if v in ("1.15", "1.21", VERSIONS[-1]))


@cache
def inspected(program: str, version: str, stripped: bool, pie: bool = False) -> GoBinary:
    return inspect_binary(go_binary(program, version, stripped=stripped, pie=pie))


@cache
def nm_all(version: str, binary: Path) -> dict[str, set[int]]:
    """Text symbols; a name can have two addresses (an ABI0 wrapper and its body)."""
    symbols: dict[str, set[int]] = {}
    for line in go_tool(version, "tool", "nm", str(binary)).splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] in "Tt":
            symbols.setdefault(parts[2], set()).add(int(parts[0], 16))
    return symbols


def nm(version: str, binary: Path) -> dict[str, int]:
    """Text symbols with exactly one address."""
    return {n: next(iter(a)) for n, a in nm_all(version, binary).items() if len(a) == 1}


def objdump(version: str, binary: Path, function: str) -> list[tuple[int, str, str]]:
    """``(address, hex bytes, mnemonic)`` of each instruction of ``function``."""
    return [(address, code, text.split()[0])
            for address, code, text in objdump_text(version, binary, function)]  # fmt: skip


@cache
def objdump_text(version: str, binary: Path, function: str) -> list[tuple[int, str, str]]:
    """``(address, hex bytes, instruction)`` of each instruction of ``function``."""
    pattern = "^" + re.escape(function) + "$"
    out = go_tool(version, "tool", "objdump", "-s", pattern, str(binary))
    rows = []
    for line in out.splitlines():
        fields = line.split("\t")
        fields = [f for f in fields if f.strip()]
        if len(fields) >= 4 and fields[1].startswith("0x"):
            rows.append((int(fields[1], 16), fields[2].strip(), fields[3].strip()))
    return rows


@pytest.mark.parametrize("stripped", [False, True], ids=["symbols", "stripped"])
@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("version", VERSIONS)
def test_version_and_module(version: str, program: str, stripped: bool) -> None:
    binary = go_binary(program, version, stripped=stripped)
    result = inspected(program, version, stripped)
    out = go_tool(version, "version", "-m", str(binary)).splitlines()
    assert out[0].endswith(": " + result.go_version)
    assert result.go_version.startswith(f"go{version}")
    lines = dict(line.strip().split("\t", 1) for line in out[1:] if "\t" in line.strip())
    assert result.main_path == lines["path"]
    assert result.module_path == lines["mod"].split("\t")[0]
    assert result.stripped is stripped
    assert result.symbol_source == ("pclntab" if stripped else "symtab")
    assert result.pie is False
    assert result.arch == "amd64"
    assert result.abi == ("register" if version_tuple(result.go_version) >= (1, 17) else "stack")


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("version", VERSIONS)
def test_symbols_and_rets_against_nm_and_objdump(version: str, program: str) -> None:
    binary = go_binary(program, version, stripped=False)
    result = inspected(program, version, False)
    symbols = nm(version, binary)
    data = binary.read_bytes()
    assert set(result.functions) == set(TLS_FUNCTIONS)
    for name, function in result.functions.items():
        assert function.address == symbols[name]
        rows = objdump(version, binary, name)
        assert rows[0][0] == function.address
        rets = tuple(addr - function.address for addr, _, op in rows if op == "RET")
        assert rets and function.ret_offsets == rets
        # The file offset holds the function's first instructions.
        first = bytes.fromhex("".join(code for _, code, _ in rows[:4]))
        assert data[function.offset : function.offset + len(first)] == first
        # The entry probe sits on the stack check's conditional jump, after
        # nothing but the check (register ABI); the stack ABI's check loads
        # CX first, so its probe stays at the entry.
        ops = {addr - function.address: op for addr, _, op in rows}
        if result.abi == "register":
            assert ops[function.entry_offset].startswith("J")
            assert ops[function.entry_offset] != "JMP"
            before = [op for at, op in ops.items() if at < function.entry_offset]
            assert before and set(before) <= {"CMPQ", "LEAQ"}
        else:
            assert function.entry_offset == 0
        # Read's plaintext copy: its one CALL runtime.memmove (none reported elsewhere).
        calls = tuple(addr - function.address
                      for addr, _, text in objdump_text(version, binary, name)
                      if text == "CALL runtime.memmove(SB)")  # fmt: skip
        assert function.copy_offsets == (calls if name == TLS_READ else ())
        if name == TLS_READ:
            assert len(calls) == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_pclntab_matches_nm(version: str) -> None:
    """Every function of the pc-line table is where ``go tool nm`` says.

    The table names an ABI0 wrapper like its body; nm adds ``.abi0``.
    """
    binary = go_binary("https_server", version, stripped=False)
    symbols = nm_all(version, binary)
    with Image(binary) as image:
        functions = list(locate(image).functions())
    assert len(functions) > 1000
    wrong = [
        (f.name, hex(f.entry), sorted(map(hex, symbols[f.name])))
        for f in functions
        if f.name in symbols
        and f.entry not in symbols[f.name] | symbols.get(f.name + ".abi0", set())
    ]
    assert wrong == []
    assert sum(f.name in symbols for f in functions) > 0.95 * len(functions)


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("version", VERSIONS)
def test_stripped_matches_symbols(version: str, program: str) -> None:
    full = inspected(program, version, False)
    stripped = inspected(program, version, True)
    assert stripped.go_version == full.go_version
    for name, function in full.functions.items():
        other = stripped.functions[name]
        assert (other.address, other.offset, other.ret_offsets, other.entry_offset,
                other.copy_offsets) == (
            function.address,
            function.offset,
            function.ret_offsets,
            function.entry_offset,
            function.copy_offsets,
        )


@pytest.mark.parametrize("version", VERSIONS)
def test_offsets_dwarf_and_table(version: str) -> None:
    """DWARF gives the offsets; the table (used when stripped) agrees with it."""
    full = inspected("https_server", version, False)
    stripped = inspected("https_server", version, True)
    assert full.offsets_source == "dwarf"
    assert set(full.offsets) == {
        "crypto/tls.Conn.conn",
        "net.TCPConn.conn",
        "net.conn.fd",
        "net.netFD.pfd",
        "internal/poll.FD.Sysfd",
        "runtime.g.goid",
    }
    assert stripped.offsets_source == "table"
    assert stripped.offsets == full.offsets == TABLE[version_tuple(full.go_version)]


@pytest.mark.parametrize("stripped", [False, True], ids=["symbols", "stripped"])
@pytest.mark.parametrize("version", PIE_VERSIONS)
def test_pie(version: str, stripped: bool) -> None:
    result = inspected("https_client", version, stripped, pie=True)
    exe = inspected("https_client", version, False)
    assert result.pie is True
    binary = go_binary("https_client", version, stripped=stripped, pie=True)
    if not stripped:
        assert {n: f.address for n, f in result.functions.items()} == {
            n: nm(version, binary)[n] for n in TLS_FUNCTIONS
        }
    for name, function in result.functions.items():
        # Code is laid out alike; only the RET offsets are comparable across modes.
        assert len(function.ret_offsets) == len(exe.functions[name].ret_offsets)
        assert function.offset == function.address - _load_bias(binary, function.address)


def _load_bias(binary: Path, address: int) -> int:
    with Image(binary) as image:
        seg = image.segment_of(address)
        return seg.vaddr - seg.offset


@pytest.mark.parametrize("version", [v for v in VERSIONS if v == "1.15"])
def test_dwarf_tree_walk_fallback(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The slow whole-tree walk finds what the fast name search finds."""
    from libtrace.tracer.golang import _offsets

    binary = go_binary("https_server", version, stripped=False)
    with Image(binary) as image:
        fast = _offsets.from_dwarf(image)
    monkeypatch.setattr(_offsets, "_struct_die", lambda *_args: None)
    with Image(binary) as image:
        slow = _offsets.from_dwarf(image)
    assert fast == slow and fast

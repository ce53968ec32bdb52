"""Every pc-line table layout, on synthetic tables (no toolchain needed).

Go 1.16–1.18 and 1.20 are not packaged by Debian here, so their magics are
checked against tables built to the layouts of ``runtime/symtab.go``.
"""

from __future__ import annotations

import struct
from pathlib import Path
from types import SimpleNamespace

import pytest

from libtrace.errors import GoBinaryError
from libtrace.tracer.golang._image import CorruptBinaryError, NotGoError
from libtrace.tracer.golang._pclntab import (
    MAGIC_12,
    MAGIC_116,
    MAGIC_118,
    MAGIC_120,
    PcLnTab,
)

TEXT = 0x401000
FUNCS = [("main.main", TEXT), ("crypto/tls.(*Conn).Write", TEXT + 0x40), ("main.f", TEXT + 0x100)]
END = TEXT + 0x180


def fake_image() -> SimpleNamespace:
    return SimpleNamespace(
        path=Path("synthetic"),
        relative_addend=lambda _address: 0,
        function_symbols=lambda: iter(()),
        sections={},
    )


def build_table(magic: int) -> bytes:
    names = b""
    nameoffs = []
    for name, _ in FUNCS:
        nameoffs.append(len(names))
        names += name.encode() + b"\0"
    n = len(FUNCS)
    head = struct.pack("<IHBB", magic, 0, 1, 8)
    if magic == MAGIC_12:
        # header(8) nfunc(8) functab[(entry, funcoff)*n, end pc, pad] _funcs names
        functab_at = 16
        funcs_at = functab_at + (n + 1) * 16
        names_at = funcs_at + n * 16
        table = head + struct.pack("<Q", n)
        for i, (_, entry) in enumerate(FUNCS):
            table += struct.pack("<QQ", entry, funcs_at + i * 16)
        table += struct.pack("<QQ", END, 0)
        for i, (_, entry) in enumerate(FUNCS):
            table += struct.pack("<QiI", entry, names_at + nameoffs[i], 0)
        return table + names
    if magic == MAGIC_116:
        header_words = 7  # nfunc nfiles funcname cu filetab pctab pcln
        names_at = 8 + header_words * 8
        pcln_at = names_at + len(names)
        words = [n, 0, names_at, 0, 0, 0, pcln_at]
        table = head + struct.pack("<7Q", *words) + names
        funcs_rel = (n + 1) * 16
        for i, (_, entry) in enumerate(FUNCS):
            table += struct.pack("<QQ", entry, funcs_rel + i * 16)
        table += struct.pack("<QQ", END, 0)
        for i, (_, entry) in enumerate(FUNCS):
            table += struct.pack("<QiI", entry, nameoffs[i], 0)
        return table
    # 1.18 and 1.20: nfunc nfiles textStart funcname cu filetab pctab pcln
    names_at = 8 + 8 * 8
    pcln_at = names_at + len(names)
    words = [n, 0, TEXT, names_at, 0, 0, 0, pcln_at]
    table = head + struct.pack("<8Q", *words) + names
    funcs_rel = (n + 1) * 8
    for i, (_, entry) in enumerate(FUNCS):
        table += struct.pack("<II", entry - TEXT, funcs_rel + i * 8)
    table += struct.pack("<II", END - TEXT, 0)
    for i, (_, entry) in enumerate(FUNCS):
        table += struct.pack("<Ii", entry - TEXT, nameoffs[i])
    return table


@pytest.mark.parametrize(
    ("magic", "layout"),
    [(MAGIC_12, "1.2"), (MAGIC_116, "1.16"), (MAGIC_118, "1.18"), (MAGIC_120, "1.20")],
)
def test_layout(magic: int, layout: str) -> None:
    table = PcLnTab(fake_image(), build_table(magic), 0x700000)  # type: ignore[arg-type]
    assert table.format == layout
    functions = list(table.functions())
    assert [(f.name, f.entry) for f in functions] == FUNCS
    assert [f.size for f in functions] == [0x40, 0xC0, 0x80]
    found = table.find({"crypto/tls.(*Conn).Write"})
    assert found["crypto/tls.(*Conn).Write"].entry == TEXT + 0x40


#: Bytes at the end of each synthetic table that the parser never reads: the
#: 1.16 table ends with the last ``_func``'s second field (after ``nameoff``).
UNREAD_TAIL = {MAGIC_12: 0, MAGIC_116: 4, MAGIC_118: 0, MAGIC_120: 0}


@pytest.mark.parametrize("magic", [MAGIC_12, MAGIC_116, MAGIC_118, MAGIC_120])
def test_every_truncation_is_our_error(magic: int) -> None:
    """Every prefix that lacks a byte the parser reads is refused with a GoBinaryError
    naming the table; the prefixes that keep them all (only the unread tail cut)
    give exactly the whole table's functions."""
    data = build_table(magic)
    table = PcLnTab(fake_image(), data, 0x700000)  # type: ignore[arg-type]
    whole = [(f.name, f.entry, f.end) for f in table.functions()]
    assert [(name, entry) for name, entry, _ in whole] == FUNCS
    parsed = []
    for cut in range(len(data)):
        try:
            table = PcLnTab(fake_image(), data[:cut], 0x700000)  # type: ignore[arg-type]
            functions = [(f.name, f.entry, f.end) for f in table.functions()]
        except GoBinaryError as exc:
            # Shorter than the fixed header: not Go at all; longer: a damaged Go table.
            assert isinstance(exc, NotGoError if cut < 16 else CorruptBinaryError), (cut, exc)
            message = str(exc)
            assert message.startswith("synthetic: ") and ".gopclntab" in message, message
            continue
        assert functions == whole, cut
        parsed.append(cut)
    assert parsed == list(range(len(data) - UNREAD_TAIL[magic], len(data)))


def test_text_start_zero_falls_back_to_text_section() -> None:
    data = bytearray(build_table(MAGIC_120))
    data[8 + 2 * 8 : 8 + 3 * 8] = bytes(8)  # textStart = 0, as Go 1.27 writes it
    image = fake_image()
    image.sections = {".text": SimpleNamespace(addr=TEXT)}
    table = PcLnTab(image, bytes(data), 0x700000)  # type: ignore[arg-type]
    assert [(f.name, f.entry) for f in table.functions()] == FUNCS


def test_unknown_magic() -> None:
    with pytest.raises(GoBinaryError):
        PcLnTab(fake_image(), struct.pack("<IHBB", 0xFFFFFFF9, 0, 1, 8) + bytes(64), 0)  # type: ignore[arg-type]

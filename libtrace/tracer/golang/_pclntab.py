"""The Go pc-line table (``.gopclntab``): function names and entry addresses.

Theory of operation (``debug/gosym/pclntab.go`` and ``runtime/symtab.go``):
the table survives stripping, because the runtime needs it for tracebacks, so
it is where a stripped binary's function symbols come from.  Its header opens
with a little-endian magic that names the layout:

======================  ========  =============================================
magic                   Go        layout
======================  ========  =============================================
``0xfffffffb``          1.2–1.15  ``nfunc`` then ``(entry, funcoff)`` pointer
                                  pairs; ``_func.nameoff`` is relative to the
                                  table start.
``0xfffffffa``          1.16–1.17 a header of offsets (funcnametab, …,
                                  pclntable); pointer pairs in ``pclntable``;
                                  names relative to ``funcnametab``.
``0xfffffff0``          1.18–1.19 as 1.16 plus ``textStart``; the pairs are
                                  ``uint32`` offsets from ``textStart``.
``0xfffffff1``          1.20+     as 1.18 (the magic changed with the
                                  ``_func`` layout behind it, not the header).
======================  ========  =============================================

Every header starts ``magic:u32, pad:u16 = 0, quantum:u8, ptrsize:u8``.  The
function table has ``nfunc + 1`` entries; the last is the end of the text, so
a function's size is the distance to the next entry.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from ._image import CorruptBinaryError, Image, NotGoError

MAGIC_12, MAGIC_116, MAGIC_118, MAGIC_120 = 0xFFFFFFFB, 0xFFFFFFFA, 0xFFFFFFF0, 0xFFFFFFF1
MAGICS = {MAGIC_12: "1.2", MAGIC_116: "1.16", MAGIC_118: "1.18", MAGIC_120: "1.20"}

#: More functions than this means a garbled header (a large binary has ~100 000).
MAX_FUNCS = 10_000_000


@dataclass(frozen=True, slots=True)
class Function:
    """One function of the table."""

    name: str
    entry: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.entry


class PcLnTab:
    """A parsed function table.

    Args:
        image: the binary.
        data: the table's bytes.
        address: the table's virtual address (to find ``textStart`` relocations).

    Raises:
        NotGoError: the bytes do not start with a known magic.
        CorruptBinaryError: the header or the table runs past the data.
    """

    def __init__(self, image: Image, data: bytes, address: int) -> None:
        if len(data) < 16:
            raise NotGoError(f"{image.path}: .gopclntab is too short to be Go's")
        magic, pad, quantum, ptrsize = struct.unpack_from("<IHBB", data, 0)
        if magic not in MAGICS or pad != 0 or ptrsize not in (4, 8) or quantum not in (1, 2, 4):
            raise NotGoError(f"{image.path}: .gopclntab has an unknown magic {magic:#x}")
        self.image = image
        self.data = data
        self.magic = magic
        self.format = MAGICS[magic]
        self.ptrsize = ptrsize
        self._ptr = "<Q" if ptrsize == 8 else "<I"
        try:
            self._parse_header(address)
        except struct.error as exc:
            raise CorruptBinaryError(f"{image.path}: truncated .gopclntab header") from exc

    def _word(self, index: int) -> int:
        """The header's pointer-sized word ``index`` (word 0 follows the 8 fixed bytes)."""
        return int(struct.unpack_from(self._ptr, self.data, 8 + index * self.ptrsize)[0])

    def _parse_header(self, address: int) -> None:
        self.nfunc = self._word(0)
        if self.nfunc > MAX_FUNCS:
            raise CorruptBinaryError(f"{self.image.path}: .gopclntab claims {self.nfunc} functions")
        if self.magic == MAGIC_12:
            self.text_start = 0
            self.funcnametab = 0
            self.functab = 8 + self.ptrsize
            self.pclntable = 0
            entry_size = 2 * self.ptrsize
        elif self.magic == MAGIC_116:
            self.text_start = 0
            self.funcnametab = self._word(2)
            self.pclntable = self._word(6)
            self.functab = self.pclntable
            entry_size = 2 * self.ptrsize
        else:
            self.text_start = self._word(2)
            if self.text_start == 0:
                self.text_start = self._text_start_fallback(address + 8 + 2 * self.ptrsize)
            self.funcnametab = self._word(3)
            self.pclntable = self._word(7)
            self.functab = self.pclntable
            entry_size = 8
        self._entry_size = entry_size
        end = self.functab + (self.nfunc + 1) * entry_size
        if end > len(self.data):
            raise CorruptBinaryError(f"{self.image.path}: .gopclntab function table is truncated")

    def _text_start_fallback(self, field_address: int) -> int:
        """``textStart`` when the header holds 0: a PIE relocation, ``runtime.text``, ``.text``."""
        addend = self.image.relative_addend(field_address)
        if addend:
            return addend
        for name, value, _size in self.image.function_symbols():
            if name == "runtime.text":
                return value
        text = self.image.sections.get(".text")
        if text is None:
            raise CorruptBinaryError(f"{self.image.path}: cannot tell where Go text starts")
        return text.addr

    def _pair(self, index: int) -> tuple[int, int]:
        """``(entry address, _func offset in data)`` of function ``index``."""
        pos = self.functab + index * self._entry_size
        if self._entry_size == 8:
            entryoff, funcoff = struct.unpack_from("<II", self.data, pos)
            return self.text_start + entryoff, self.pclntable + funcoff
        entry, funcoff = struct.unpack_from(self._ptr + self._ptr[1:], self.data, pos)
        if self.magic == MAGIC_12:
            return entry, funcoff
        return entry, self.pclntable + funcoff

    def _name(self, funcoff: int) -> str:
        # _func: entry (uintptr, or uint32 entryoff from 1.18) then nameoff int32.
        skip = 4 if self.magic in (MAGIC_118, MAGIC_120) else self.ptrsize
        (nameoff,) = struct.unpack_from("<i", self.data, funcoff + skip)
        start = self.funcnametab + nameoff
        end = self.data.find(b"\0", start)
        if nameoff < 0 or end < 0:
            raise CorruptBinaryError(f"{self.image.path}: .gopclntab function name out of range")
        return bytes(self.data[start:end]).decode("utf-8", "replace")

    def functions(self) -> Iterator[Function]:
        """Every function, in address order.

        Raises:
            CorruptBinaryError: an entry or a name lies outside the table.
        """
        try:
            entry, funcoff = self._pair(0)
            for index in range(1, self.nfunc + 1):
                next_entry, next_funcoff = self._pair(index)
                yield Function(self._name(funcoff), entry, next_entry)
                entry, funcoff = next_entry, next_funcoff
        except (struct.error, OverflowError, ValueError) as exc:
            raise CorruptBinaryError(f"{self.image.path}: .gopclntab entry out of range") from exc

    def find(self, names: set[str]) -> dict[str, Function]:
        """The functions named in ``names`` (those present)."""
        found = {}
        for function in self.functions():
            if function.name in names:
                found[function.name] = function
                if len(found) == len(names):
                    break
        return found


def locate(image: Image) -> PcLnTab:
    """Find and parse the table: the ``.gopclntab`` section, else a scan for its magic.

    Raises:
        NotGoError: no table is there.
        CorruptBinaryError: the table is damaged.
    """
    for name in (".gopclntab", ".data.rel.ro.gopclntab"):
        sec = image.sections.get(name)
        if sec is not None and not sec.nobits and sec.size:
            data = image.data[sec.offset : sec.offset + sec.size]
            return PcLnTab(image, data, sec.addr)
    # Scan the read-only segments for a header that parses.
    for seg in image.segments:
        if seg.flags & 0x1:  # PF_X: text holds no table
            continue
        blob = image.data[seg.offset : seg.offset + seg.filesz]
        for magic in MAGICS:
            needle = struct.pack("<I", magic) + b"\0\0"
            pos = blob.find(needle)
            while pos >= 0:
                if pos % 8 == 0:
                    try:
                        table = PcLnTab(image, blob[pos:], seg.vaddr + pos)
                        next(table.functions(), None)
                        return table
                    except (NotGoError, CorruptBinaryError):
                        pass
                pos = blob.find(needle, pos + 1)
    raise NotGoError(f"{image.path}: no Go pc-line table (not a Go binary)")

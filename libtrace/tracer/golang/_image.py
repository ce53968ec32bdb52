"""An ELF file as the loader sees it: segments, sections, reads by virtual address.

This is the one boundary where pyelftools and the raw bytes meet the rest of
the inspector: every foreign error (``ELFError``, ``struct.error``,
``IndexError``, a short read) becomes a :class:`GoBinaryError` subclass here,
so callers see one exception tree.  The file is mapped with ``mmap``, so a
100 MB binary costs address space, not memory, and reads are slices.
"""

from __future__ import annotations

import contextlib
import mmap
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from elftools.common.exceptions import DWARFError, ELFError
from elftools.construct import ConstructError
from elftools.elf.elffile import ELFFile

from ...errors import GoBinaryError


class NotElfError(GoBinaryError):
    """The file is not an ELF executable."""


class NotGoError(GoBinaryError):
    """The ELF file was not built by the Go toolchain."""


class CorruptBinaryError(GoBinaryError):
    """The Go binary is truncated or corrupt."""


#: Foreign exceptions that mean "the bytes are not what the headers promise".
FOREIGN_ERRORS = (
    ELFError,
    DWARFError,
    ConstructError,
    zlib.error,
    struct.error,
    IndexError,
    ValueError,
    KeyError,
    EOFError,
    OSError,
    OverflowError,
)

_ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True, slots=True)
class Segment:
    """One ``PT_LOAD`` program header."""

    vaddr: int
    offset: int
    filesz: int
    memsz: int
    flags: int

    def contains(self, address: int) -> bool:
        return self.vaddr <= address < self.vaddr + self.filesz


@dataclass(frozen=True, slots=True)
class Section:
    """One section header (name, address, file range)."""

    name: str
    addr: int
    offset: int
    size: int
    flags: int
    nobits: bool


class Image:
    """An ELF file opened for reading by file offset and by virtual address.

    Use as a context manager; it owns the file and the mapping.

    Raises:
        NotElfError: the file is not ELF (or is empty).
        CorruptBinaryError: the ELF headers are truncated or inconsistent.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._relocs: dict[int, int] | None = None
        try:
            self._file = open(self.path, "rb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise GoBinaryError(f"{path}: cannot open ({exc.strerror or exc})") from exc
        try:
            head = self._file.read(4)
            if head != _ELF_MAGIC:
                raise NotElfError(f"{path}: not an ELF file")
            self.data = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self.elf = ELFFile(self._file)
            self.machine: str = self.elf["e_machine"]
            self.elf_type: str = self.elf["e_type"]
            self.ptrsize = 8 if self.elf.elfclass == 64 else 4
            self.little = self.elf.little_endian
            self.segments = [
                Segment(s["p_vaddr"], s["p_offset"], s["p_filesz"], s["p_memsz"], s["p_flags"])
                for s in self.elf.iter_segments()
                if s["p_type"] == "PT_LOAD"
            ]
            self.sections = {
                s.name: Section(
                    s.name,
                    s["sh_addr"],
                    s["sh_offset"],
                    s["sh_size"],
                    s["sh_flags"],
                    s["sh_type"] == "SHT_NOBITS",
                )
                for s in self.elf.iter_sections()
            }
        except GoBinaryError:
            self.close()
            raise
        except FOREIGN_ERRORS as exc:
            self.close()
            raise CorruptBinaryError(f"{path}: corrupt ELF headers ({exc})") from exc
        size = len(self.data)
        for sec in self.sections.values():
            if not sec.nobits and sec.size and sec.offset + sec.size > size:
                self.close()
                raise CorruptBinaryError(
                    f"{path}: truncated (section {sec.name} ends past the end of the file)"
                )

    def close(self) -> None:
        data = getattr(self, "data", None)
        if data is not None:
            # A slice may still be alive; the mapping then goes with it.
            with contextlib.suppress(BufferError):
                data.close()
        self._file.close()

    def __enter__(self) -> Image:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reads ---------------------------------------------------------------

    @property
    def endian(self) -> str:
        return "<" if self.little else ">"

    @property
    def pie(self) -> bool:
        """True for a position-independent executable (``ET_DYN``)."""
        return self.elf_type == "ET_DYN"

    def section_bytes(self, name: str) -> bytes | None:
        """The file bytes of section ``name``, or None when it is absent or empty."""
        sec = self.sections.get(name)
        if sec is None or sec.nobits or not sec.size:
            return None
        return self.data[sec.offset : sec.offset + sec.size]

    def segment_of(self, address: int) -> Segment:
        """The ``PT_LOAD`` segment whose file bytes hold ``address``.

        Raises:
            CorruptBinaryError: no segment maps it.
        """
        for seg in self.segments:
            if seg.contains(address):
                return seg
        raise CorruptBinaryError(f"{self.path}: address {address:#x} is in no loaded segment")

    def file_offset(self, address: int) -> int:
        """The file offset of virtual ``address`` (what a uprobe is attached at)."""
        seg = self.segment_of(address)
        return address - seg.vaddr + seg.offset

    def read(self, address: int, size: int) -> bytes:
        """``size`` bytes at virtual ``address``.

        Raises:
            CorruptBinaryError: the range is not wholly in the file.
        """
        offset = self.file_offset(address)
        seg = self.segment_of(address)
        if size < 0 or address + size > seg.vaddr + seg.filesz or offset + size > len(self.data):
            raise CorruptBinaryError(
                f"{self.path}: {size} bytes at {address:#x} run past their segment"
            )
        return self.data[offset : offset + size]

    def read_ptr(self, address: int) -> int:
        fmt = self.endian + ("Q" if self.ptrsize == 8 else "I")
        return int(struct.unpack(fmt, self.read(address, self.ptrsize))[0])

    # -- symbols -------------------------------------------------------------

    def function_symbols(self) -> Iterator[tuple[str, int, int]]:
        """``(name, value, size)`` of every ``STT_FUNC`` in ``.symtab`` (raw and fast).

        Raises:
            CorruptBinaryError: the table or its strings run past the file.
        """
        symtab = self.sections.get(".symtab")
        if symtab is None or symtab.nobits:
            return
        strtab_index = self.elf.get_section_by_name(".symtab")["sh_link"]  # type: ignore[index]
        strsec = self.elf.get_section(strtab_index)
        strings = self.data[strsec["sh_offset"] : strsec["sh_offset"] + strsec["sh_size"]]
        raw = self.data[symtab.offset : symtab.offset + symtab.size]
        if self.ptrsize == 8:
            fmt, entsize = self.endian + "IBBHQQ", 24
        else:
            fmt, entsize = self.endian + "IIIBBH", 16
        raw = raw[: len(raw) - len(raw) % entsize]
        for fields in struct.iter_unpack(fmt, raw):
            if self.ptrsize == 8:
                name_off, info, _other, _shndx, value, size = fields
            else:
                name_off, value, size, info, _other, _shndx = fields
            if info & 0xF != 2:  # STT_FUNC
                continue
            end = strings.find(b"\0", name_off)
            if end < 0:
                raise CorruptBinaryError(f"{self.path}: symbol name runs past .strtab")
            yield strings[name_off:end].decode("utf-8", "replace"), value, size

    def relative_addend(self, address: int) -> int:
        """The addend of the ``RELATIVE`` relocation at ``address`` in a PIE, else 0.

        In a PIE the linker leaves pointer fields 0 in the file and lets the
        dynamic loader write ``base + addend``; the addend is the link-time value.
        """
        if self._relocs is None:
            self._relocs = {}
            rela = self.sections.get(".rela.dyn")
            if rela is not None and not rela.nobits and self.ptrsize == 8:
                raw = self.data[rela.offset : rela.offset + rela.size]
                raw = raw[: len(raw) - len(raw) % 24]
                for offset, info, addend in struct.iter_unpack(self.endian + "QQq", raw):
                    if info & 0xFFFFFFFF in _RELATIVE_TYPES:
                        self._relocs[offset] = addend
        return self._relocs.get(address, 0)


#: R_X86_64_RELATIVE and R_AARCH64_RELATIVE.
_RELATIVE_TYPES = frozenset({8, 1027})

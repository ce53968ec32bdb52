"""The ``.go.buildinfo`` blob: the Go version and the module information.

Theory of operation (``debug/buildinfo`` in the Go sources): the linker writes
a 32-byte header ``"\\xff Go buildinf:"``, a pointer size byte and a flags
byte, 16-byte aligned, into a writable data segment (section
``.go.buildinfo``, which survives ``-s -w``).  From Go 1.18 (flag bit 1) the
version and the module text follow the header inline, each prefixed by its
length as an unsigned varint.  Before that (1.13–1.17) two pointers follow the
magic, each pointing at a Go string header ``(data pointer, length)``, so
reading them needs the virtual address space.  The module text is framed by
16 sentinel bytes on each side, and its lines are tab separated: ``path``
(the main package), ``mod`` (the main module), ``dep``, ``build`` settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ._image import CorruptBinaryError, Image, NotGoError

MAGIC = b"\xff Go buildinf:"

#: Header bytes: magic (14), pointer size (1), flags (1), then two pointers or padding.
HEADER_SIZE = 32

#: flags bit 0: big-endian pointers; bit 1: strings inline after the header (Go ≥ 1.18).
FLAG_BIG_ENDIAN, FLAG_INLINE = 0x1, 0x2

#: A module text shorter than its two 16-byte sentinels plus a newline is bare text.
SENTINEL = 16

#: Longest string a header may announce (a modinfo of 16 MiB would be absurd).
MAX_STRING = 16 << 20


@dataclass(frozen=True, slots=True)
class BuildInfo:
    """What ``go version -m`` prints."""

    go_version: str
    #: The main package's import path (``path`` line), or None.
    path: str | None = None
    #: The main module's path (``mod`` line), or None (a GOPATH or file build).
    module: str | None = None
    #: ``build`` settings (Go ≥ 1.18), e.g. ``{"-ldflags": "-s -w", "CGO_ENABLED": "0"}``.
    settings: dict[str, str] = field(default_factory=dict)


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise CorruptBinaryError("truncated varint in .go.buildinfo")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _find(image: Image) -> int:
    """The virtual address of the buildinfo header."""
    sec = image.sections.get(".go.buildinfo")
    if sec is not None and not sec.nobits and sec.size >= HEADER_SIZE:
        return sec.addr
    # Some linkers merge the section away: scan writable segments, 16-aligned.
    for seg in image.segments:
        if not seg.flags & 0x2:  # PF_W
            continue
        data = image.data[seg.offset : seg.offset + seg.filesz]
        pos = data.find(MAGIC)
        while pos >= 0:
            if (seg.vaddr + pos) % 16 == 0:
                return seg.vaddr + pos
            pos = data.find(MAGIC, pos + 1)
    raise NotGoError(f"{image.path}: no Go build information (not a Go binary, or Go < 1.13)")


def _string_at_pointer(image: Image, address: int, ptrsize: int) -> str:
    """The Go string whose header ``(data, len)`` is at ``address``."""
    data_ptr = image.read_ptr(address)
    length = image.read_ptr(address + ptrsize)
    if length > MAX_STRING:
        raise CorruptBinaryError(f"{image.path}: absurd string length {length} in buildinfo")
    if length == 0:
        return ""
    return image.read(data_ptr, length).decode("utf-8", "replace")


def read_buildinfo(image: Image) -> BuildInfo:
    """Read the Go version and module information.

    Raises:
        NotGoError: there is no buildinfo blob.
        CorruptBinaryError: the blob is truncated or its pointers lead nowhere.
    """
    address = _find(image)
    header = image.read(address, HEADER_SIZE)
    if header[: len(MAGIC)] != MAGIC:
        raise NotGoError(f"{image.path}: .go.buildinfo lacks the Go magic")
    ptrsize, flags = header[14], header[15]
    if ptrsize not in (4, 8):
        raise CorruptBinaryError(f"{image.path}: buildinfo pointer size {ptrsize}")
    if flags & FLAG_INLINE:
        seg = image.segment_of(address)
        blob = image.read(address, seg.vaddr + seg.filesz - address)
        length, pos = _uvarint(blob, HEADER_SIZE)
        version = bytes(blob[pos : pos + length]).decode("utf-8", "replace")
        pos += length
        length, pos = _uvarint(blob, pos)
        if pos + length > len(blob):
            raise CorruptBinaryError(f"{image.path}: buildinfo module text runs past its segment")
        modinfo = bytes(blob[pos : pos + length]).decode("utf-8", "replace")
    else:
        version = _string_at_pointer(image, image.read_ptr(address + 16), ptrsize)
        modinfo = _string_at_pointer(image, image.read_ptr(address + 16 + ptrsize), ptrsize)
    if not re.match(r"(go1|devel)", version):
        raise CorruptBinaryError(f"{image.path}: buildinfo Go version {version!r} is garbled")
    return _parse_modinfo(version, modinfo)


def _parse_modinfo(version: str, modinfo: str) -> BuildInfo:
    if len(modinfo) >= 2 * SENTINEL + 1 and modinfo[-SENTINEL - 1] == "\n":
        modinfo = modinfo[SENTINEL:-SENTINEL]
    path = module = None
    settings: dict[str, str] = {}
    for line in modinfo.splitlines():
        key, _, rest = line.partition("\t")
        if key == "path":
            path = rest
        elif key == "mod":
            module = rest.split("\t", 1)[0]
        elif key == "build":
            name, _, value = rest.partition("=")
            settings[name] = value.strip('"')
    return BuildInfo(version, path, module, settings)


def version_tuple(go_version: str) -> tuple[int, int]:
    """``"go1.21.13"`` → ``(1, 21)``; ``"devel go1.22-abc"`` → ``(1, 22)``; else ``(0, 0)``."""
    match = re.search(r"go(\d+)\.(\d+)", go_version)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)

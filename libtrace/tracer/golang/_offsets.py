"""Structure member offsets for Go TLS tracing: from DWARF, else a per-version table.

The chain a uprobe on ``crypto/tls.(*Conn).Read/Write`` follows to a socket fd::

    *tls.Conn  --(+ crypto/tls.Conn.conn: a net.Conn interface {itab, data})-->
    data word (+ptrsize) = *net.TCPConn  --(+ net.TCPConn.conn, embedded net.conn)-->
    net.conn   --(+ net.conn.fd)--> *net.netFD --(+ net.netFD.pfd, poll.FD)-->
    poll.FD    --(+ internal/poll.FD.Sysfd)--> int fd

and the goroutine id is ``runtime.g.goid`` (the g is in R14 under the register
ABI, in TLS at ``-8(FS)`` under the stack ABI).

Theory of operation: Go's DWARF names every type by its full Go name and
writes names inline (``DW_FORM_string``), so the struct DIE is found by
searching the decompressed ``.debug_info`` for the name and parsing the DIE
that starts at the abbreviation code just before it; a whole-tree walk
(seconds in pure Python) is the fallback only.  Stripped binaries carry no
DWARF, so :data:`TABLE` holds the offsets measured from the DWARF of each
Debian Go toolchain's own builds (``tests/golang/test_offsets.py`` re-measures
them); a version not in the table uses the nearest older one and says so.
"""

from __future__ import annotations

from typing import Any

from ._buildinfo import version_tuple
from ._image import FOREIGN_ERRORS, CorruptBinaryError, Image

#: (struct, member) pairs reported, keyed "struct.member".
MEMBERS: tuple[tuple[str, str], ...] = (
    ("crypto/tls.Conn", "conn"),
    ("net.TCPConn", "conn"),
    ("net.conn", "fd"),
    ("net.netFD", "pfd"),
    ("internal/poll.FD", "Sysfd"),
    ("runtime.g", "goid"),
)

_STABLE = {
    "crypto/tls.Conn.conn": 0,
    "net.TCPConn.conn": 0,
    "net.conn.fd": 0,
    "net.netFD.pfd": 0,
    "internal/poll.FD.Sysfd": 16,
}

#: amd64 offsets measured from DWARF of Debian's toolchains (goid moved when
#: Go 1.23 added g.syscallbp and moved back when a later release removed a field).
TABLE: dict[tuple[int, int], dict[str, int]] = {
    (1, 15): {**_STABLE, "runtime.g.goid": 152},
    (1, 19): {**_STABLE, "runtime.g.goid": 152},
    (1, 21): {**_STABLE, "runtime.g.goid": 152},
    (1, 22): {**_STABLE, "runtime.g.goid": 152},
    (1, 23): {**_STABLE, "runtime.g.goid": 160},
    (1, 24): {**_STABLE, "runtime.g.goid": 160},
    (1, 26): {**_STABLE, "runtime.g.goid": 152},
    (1, 27): {**_STABLE, "runtime.g.goid": 152},
}


def from_table(go_version: str) -> tuple[dict[str, int], str]:
    """The table's offsets for ``go_version`` and their source label.

    Returns:
        ``(offsets, "table")`` for a measured version, ``(offsets, "table:go1.NN")``
        when the nearest older measured version stands in, and ``({}, "none")``
        when the version is older than every entry.
    """
    wanted = version_tuple(go_version)
    if wanted in TABLE:
        return dict(TABLE[wanted]), "table"
    older = [v for v in TABLE if v <= wanted]
    if not older:
        return {}, "none"
    nearest = max(older)
    return dict(TABLE[nearest]), f"table:go{nearest[0]}.{nearest[1]}"


def _member_location(value: Any) -> int | None:
    if isinstance(value, int):
        return int(value)
    # DWARF 2 style: a block holding DW_OP_plus_uconst ULEB128.
    if isinstance(value, list) and value and value[0] == 0x23:
        result = shift = 0
        for byte in map(int, value[1:]):
            result |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return result
    return None


def _struct_die(dwarf: Any, info: bytes, name: str) -> Any | None:
    needle = name.encode() + b"\0"
    pos = info.find(needle)
    while pos > 0:
        code = info[pos - 1]
        if 0 < code < 0x80:
            try:
                die = dwarf.get_DIE_from_refaddr(pos - 1)
            except FOREIGN_ERRORS:
                die = None
            if (
                die is not None
                and die.tag == "DW_TAG_structure_type"
                and die.attributes.get("DW_AT_name") is not None
                and die.attributes["DW_AT_name"].value == needle[:-1]
            ):
                return die
        pos = info.find(needle, pos + 1)
    return None


def _walk_for(dwarf: Any, names: set[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for cu in dwarf.iter_CUs():
        for die in cu.get_top_DIE().iter_children():
            if die.tag != "DW_TAG_structure_type":
                continue
            attr = die.attributes.get("DW_AT_name")
            name = attr.value.decode("utf-8", "replace") if attr else ""
            if name in names and name not in found:
                found[name] = die
        if len(found) == len(names):
            break
    return found


def from_dwarf(image: Image) -> dict[str, int] | None:
    """The member offsets from the binary's DWARF, or None when it has none.

    Raises:
        CorruptBinaryError: the DWARF sections are present but unreadable.
    """
    if not ({".debug_info", ".zdebug_info"} & image.sections.keys()):
        return None
    try:
        dwarf = image.elf.get_dwarf_info(relocate_dwarf_sections=False, follow_links=False)
        info = dwarf.debug_info_sec.stream.getvalue()  # type: ignore[union-attr]
        structs = {name for name, _ in MEMBERS}
        dies = {name: _struct_die(dwarf, info, name) for name in structs}
        missing = {name for name, die in dies.items() if die is None}
        if missing:
            dies.update(_walk_for(dwarf, missing))
        offsets: dict[str, int] = {}
        for struct_name, member in MEMBERS:
            die = dies.get(struct_name)
            if die is None:
                continue
            for child in die.iter_children():
                attr = child.attributes.get("DW_AT_name")
                if child.tag != "DW_TAG_member" or attr is None or attr.value != member.encode():
                    continue
                loc = child.attributes.get("DW_AT_data_member_location")
                value = _member_location(loc.value) if loc else None
                if value is not None:
                    offsets[f"{struct_name}.{member}"] = value
        return offsets
    except FOREIGN_ERRORS as exc:
        raise CorruptBinaryError(f"{image.path}: unreadable DWARF ({exc})") from exc

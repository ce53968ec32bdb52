"""Static inspection of a compiled BPF ELF object, and what kernel it needs.

Theory of operation
-------------------
clang writes one ELF section per ``SEC()``; every executable section other
than ``.text`` holds entry programs, one per ``STT_FUNC`` symbol, and
``.text`` holds subprograms (``__noinline`` functions) that libbpf appends to
each program calling them.  pyelftools reads the ELF; this module decodes the
8-byte BPF instructions of each function to find the helpers it calls
(``BPF_CALL`` with ``src_reg`` 0), its bpf-to-bpf calls (``src_reg``
``BPF_PSEUDO_CALL``), its back-edges (a jump whose target is at or before the
jump that closes a cycle: a loop), and its size in instruction slots
(``ld_imm64`` is two slots, as the kernel counts).  A loop is found the way
the pre-5.3 verifier found it, as a back-edge of a depth-first walk of the
control-flow graph: clang often jumps *backwards* to a shared exit block, and
that is not a loop.

A bpf-to-bpf call is resolved the way libbpf resolves it: with a relocation
against a symbol, the target is ``symbol value + (imm + 1) * 8`` in the
symbol's section; without one it is ``pc + imm + 1`` in the same section.

Maps come from the ``.maps`` section's symbols, and their type, key/value
sizes and max_entries from the BTF that describes them: libbpf's BTF-defined
map is a ``VAR`` whose type is an anonymous ``STRUCT`` with members such as
``type`` and ``max_entries`` declared as pointers to arrays whose dimension
*is* the value (``__uint(type, 27)`` is ``int (*type)[27]``), and ``key`` /
``value`` as pointers to the key and value types.  Only as much of BTF as
that needs is parsed here (BTF is not ELF, so pyelftools does not read it).
Legacy ``SEC("maps")`` ``struct bpf_map_def`` entries are read from the
section data.

:func:`min_kernel` and :func:`check_limits` weigh what the object uses
against :mod:`libtrace.bpf.kernel_features`.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from dataclasses import replace as _replace

from elftools.common.exceptions import ELFError
from elftools.construct import ConstructError
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import Section, SymbolTableSection

from libtrace.bpf import kernel_features as kf
from libtrace.bpf.helper_sizes import HelperSize, helper_sizes
from libtrace.errors import LibtraceError

__all__ = [
    "BpfObjectFormatError",
    "MapInfo",
    "ObjectInfo",
    "ProgramInfo",
    "check_limits",
    "inspect_object",
    "min_kernel",
    "reachable_subprograms",
]


class BpfObjectFormatError(LibtraceError, ValueError):
    """The file is not a BPF ELF object libtrace can read."""


# --- ELF and instruction-set constants --------------------------------------

#: e_machine of BPF objects (EM_BPF in include/uapi/linux/elf-em.h).
EM_BPF = 247
#: e_ident[EI_MAG0..3]: told apart up front so a stray text file gets a plain
#: "not an ELF file" rather than pyelftools' wording.
ELF_MAGIC = b"\x7fELF"
#: Size of one instruction slot; ld_imm64 takes two.
INSN_SIZE = 8
#: Section holding subprograms rather than entry programs.
TEXT_SECTION = ".text"
#: libbpf's BTF-defined maps, and the legacy struct bpf_map_def section.
MAPS_SECTION = ".maps"
LEGACY_MAPS_SECTION = "maps"
LICENSE_SECTION = "license"
#: Section name families libbpf turns into global-data array maps.
GLOBAL_DATA_SECTIONS = (".data", ".rodata", ".bss")
#: prog_type given to functions of .text.
SUBPROGRAM = "subprogram"

_SHF_EXECINSTR = 0x4  # section flag of executable sections
_BPF_CLASS_MASK = 0x07
_BPF_JMP = 0x05
_BPF_JMP32 = 0x06
_BPF_OP_MASK = 0xF0
_BPF_JA = 0x00
_BPF_CALL = 0x80
_BPF_EXIT = 0x90
_BPF_LD_IMM64 = 0x18  # BPF_LD | BPF_IMM | BPF_DW
_BPF_PSEUDO_CALL = 1


# --- Results --------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class ProgramInfo:
    """One function of the object: an entry program or a subprogram.

    The counts describe this function's own code.  A program also runs the
    subprograms it calls; :func:`reachable_subprograms` lists them, and
    :func:`min_kernel` / :func:`check_limits` take them into account.
    """

    name: str  #: function symbol name
    section: str  #: e.g. "tracepoint/syscalls/sys_enter_write"
    prog_type: str  #: libbpf SEC() family ("tracepoint", "kprobe", ...), or "subprogram"
    instructions: int  #: 8-byte slots (ld_imm64 counts as 2, as the kernel counts)
    helpers: frozenset[int]  #: helper ids called (BPF_CALL, src_reg 0)
    helper_names: frozenset[str]  #: their names ("helper_<id>" when unknown)
    #: Loops: jumps that close a cycle of the control-flow graph (depth-first
    #: back-edges), which verifiers before 5.3 reject.
    back_edges: int
    bpf_calls: int  #: bpf-to-bpf calls (BPF_CALL, src_reg BPF_PSEUDO_CALL)
    tail_calls: bool  #: calls bpf_tail_call
    calls: tuple[str, ...] = ()  #: functions called directly, in first-call order
    #: Jumps whose target is at or before the jump.  Every loop has one, but
    #: so does a jump back to a shared exit block, which is no loop.
    backward_jumps: int = 0
    #: Each size-taking helper call and how its size is bounded (see helper_sizes).
    helper_sizes: tuple[HelperSize, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class MapInfo:
    """One map; fields are None where the object does not say."""

    name: str
    map_type: int | None = None  #: BPF_MAP_TYPE_* value
    key_size: int | None = None
    value_size: int | None = None
    max_entries: int | None = None

    @property
    def type_name(self) -> str | None:
        """``"ringbuf"`` for type 27, and so on."""
        return None if self.map_type is None else kf.map_type_name(self.map_type)


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectInfo:
    """What a BPF object contains, as far as kernel requirements go."""

    path: str
    programs: tuple[ProgramInfo, ...]  #: entry programs, in section order
    maps: tuple[MapInfo, ...]
    global_data: tuple[str, ...]  #: .data/.rodata*/.bss sections with nonzero size
    core_relocations: int  #: CO-RE relocation records in .BTF.ext (0 if absent)
    license: str
    subprograms: tuple[ProgramInfo, ...] = ()  #: functions of .text, called by programs


# --- Entry point -------------------------------------------------------------------

def inspect_object(path: str | os.PathLike[str]) -> ObjectInfo:
    """Read a compiled BPF object and describe its programs, maps and data.

    Args:
        path: the ``.bpf.o`` file.

    Returns:
        The object's :class:`ObjectInfo`.

    Raises:
        BpfObjectFormatError: the file is not ELF, not BPF (``e_machine`` is
            not EM_BPF), or truncated or malformed.
        OSError: the file cannot be read.
    """
    name = os.fspath(path)
    with open(name, "rb") as handle:
        data = handle.read()
    if not data.startswith(ELF_MAGIC):
        raise BpfObjectFormatError(f"{name} is not an ELF file.")
    try:
        return _inspect(name, data)
    except (ELFError, ConstructError, struct.error) as exc:
        # pyelftools' own errors, and struct.error from its short reads, are
        # translated here, at the one boundary, without their tracebacks.
        raise BpfObjectFormatError(
            f"{name} is a truncated or malformed ELF file ({_first_line(exc)})."
        ) from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _inspect(path: str, data: bytes) -> ObjectInfo:
    elf = ELFFile(io.BytesIO(data))
    if elf["e_machine"] not in ("EM_BPF", EM_BPF):
        raise BpfObjectFormatError(
            f"{path} is an ELF file for {elf['e_machine']}, not a BPF object (EM_BPF)."
        )
    _check_bounds(path, elf, len(data))
    sections = list(elf.iter_sections())
    symbols = _symbols(elf)
    relocations = _relocations(elf, symbols)
    fmt = "<" if elf.little_endian else ">"
    functions = _functions(sections, symbols)

    programs: list[ProgramInfo] = []
    subprograms: list[ProgramInfo] = []
    for func in functions:
        scan = _scan(func.code, fmt, elf.little_endian)
        calls = _resolve_calls(func, scan.call_sites, relocations, functions)
        info = ProgramInfo(
            name=func.name,
            section=func.section,
            prog_type=SUBPROGRAM if func.section == TEXT_SECTION else kf.program_kind(func.section),
            instructions=len(func.code) // INSN_SIZE,
            helpers=frozenset(scan.helpers),
            helper_names=frozenset(kf.helper_name(h) for h in scan.helpers),
            back_edges=scan.back_edges,
            backward_jumps=scan.backward_jumps,
            bpf_calls=len(scan.call_sites),
            tail_calls=kf.TAIL_CALL_HELPER in scan.helpers,
            calls=calls,
            helper_sizes=tuple(helper_sizes(func.code)) if elf.little_endian else (),
        )
        (subprograms if func.section == TEXT_SECTION else programs).append(info)

    btf = _Btf.parse(_Cursor.of(elf, ".BTF", fmt, path))
    return ObjectInfo(
        path=path,
        programs=tuple(programs),
        subprograms=tuple(subprograms),
        maps=_maps(elf, symbols, btf, fmt, path),
        global_data=tuple(
            s.name for s in sections if _is_global_data(s.name) and s["sh_size"] > 0
        ),
        core_relocations=_count_core_relocations(_Cursor.of(elf, ".BTF.ext", fmt, path)),
        license=_license(elf),
    )


def _check_bounds(path: str, elf: ELFFile, size: int) -> None:
    """pyelftools reads lazily and returns short data past the end of the
    file, so a truncated object must be caught here, from the headers."""
    table_end = elf["e_shoff"] + elf["e_shnum"] * elf["e_shentsize"]
    if table_end > size:
        raise BpfObjectFormatError(f"{path} is truncated: its section table ends past the file.")
    for section in elf.iter_sections():
        if section["sh_type"] == "SHT_NOBITS":
            continue
        if section["sh_offset"] + section["sh_size"] > size:
            raise BpfObjectFormatError(
                f"{path} is truncated: section {section.name or '#?'} ends past the file."
            )


# --- Sections, symbols, relocations -------------------------------------------

@dataclass(frozen=True, slots=True)
class _Symbol:
    name: str
    kind: str  # STT_FUNC, STT_OBJECT, STT_SECTION, ...
    shndx: int | None  # None for SHN_UNDEF/SHN_ABS/...
    value: int
    size: int


@dataclass(frozen=True, slots=True)
class _Function:
    name: str
    section: str
    shndx: int
    start: int  # byte offset in its section
    code: bytes


def _symbols(elf: ELFFile) -> list[_Symbol]:
    table = elf.get_section_by_name(".symtab")
    if not isinstance(table, SymbolTableSection):
        return []
    result = []
    for sym in table.iter_symbols():
        shndx = sym["st_shndx"]
        result.append(_Symbol(
            name=sym.name,
            kind=sym["st_info"]["type"],
            shndx=shndx if isinstance(shndx, int) else None,
            value=sym["st_value"],
            size=sym["st_size"],
        ))
    return result


def _relocations(elf: ELFFile, symbols: list[_Symbol]) -> dict[int, dict[int, _Symbol]]:
    """Section index -> {byte offset in that section -> relocated symbol}."""
    result: dict[int, dict[int, _Symbol]] = {}
    for section in elf.iter_sections():
        if not isinstance(section, RelocationSection):
            continue
        target = section["sh_info"]
        entries = result.setdefault(target, {})
        for rel in section.iter_relocations():
            index = rel["r_info_sym"]
            if 0 <= index < len(symbols):
                entries[rel["r_offset"]] = symbols[index]
    return result


def _functions(sections: list[Section], symbols: list[_Symbol]) -> list[_Function]:
    """Every STT_FUNC of every executable section, in section then address order."""
    by_section: dict[int, list[_Symbol]] = {}
    for sym in symbols:
        if sym.kind == "STT_FUNC" and sym.shndx is not None:
            by_section.setdefault(sym.shndx, []).append(sym)
    result = []
    for index, section in enumerate(sections):
        if not section["sh_flags"] & _SHF_EXECINSTR or index not in by_section:
            continue
        data = section.data()
        funcs = sorted(by_section[index], key=lambda s: s.value)
        for position, sym in enumerate(funcs):
            end = sym.value + sym.size
            if sym.size == 0:  # hand-written asm may leave sizes out
                end = funcs[position + 1].value if position + 1 < len(funcs) else len(data)
            result.append(_Function(sym.name, section.name, index, sym.value,
                                    data[sym.value:end]))
    return result


def _section_data(elf: ELFFile, name: str) -> bytes | None:
    section = elf.get_section_by_name(name)
    return None if section is None else section.data()


def _is_global_data(name: str) -> bool:
    return any(name == s or name.startswith(s + ".") for s in GLOBAL_DATA_SECTIONS)


def _license(elf: ELFFile) -> str:
    data = _section_data(elf, LICENSE_SECTION)
    if not data:
        return ""
    return data.split(b"\0", 1)[0].decode("utf-8", errors="replace")


# --- Instructions -----------------------------------------------------------------

@dataclass(slots=True)
class _Scan:
    helpers: set[int] = field(default_factory=set)
    backward_jumps: int = 0
    back_edges: int = 0
    call_sites: list[tuple[int, int]] = field(default_factory=list)  # (slot, imm)


def _scan(code: bytes, fmt: str, little_endian: bool) -> _Scan:
    """Decode one function: its calls, and its control-flow graph's loops."""
    insn = struct.Struct(fmt + "BBhi")
    scan = _Scan()
    slots = len(code) // INSN_SIZE
    successors: dict[int, tuple[int, ...]] = {}
    pc = 0
    while pc < slots:
        opcode, regs, off, imm = insn.unpack_from(code, pc * INSN_SIZE)
        # The register byte is dst:4 src:4 in bit-field order, which puts src
        # in the high nibble on little-endian targets and the low on big.
        src = regs >> 4 if little_endian else regs & 0x0F
        if opcode == _BPF_LD_IMM64:
            successors[pc] = (pc + 2,)
            pc += 2
            continue
        cls, op = opcode & _BPF_CLASS_MASK, opcode & _BPF_OP_MASK
        following: tuple[int, ...] = (pc + 1,)
        if cls == _BPF_JMP and op == _BPF_CALL:
            if src == 0:
                scan.helpers.add(imm)
            elif src == _BPF_PSEUDO_CALL:
                scan.call_sites.append((pc, imm))
            # src 2 (BPF_PSEUDO_KFUNC_CALL) calls a kernel function: neither.
        elif cls in (_BPF_JMP, _BPF_JMP32) and op == _BPF_EXIT:
            following = ()
        elif cls in (_BPF_JMP, _BPF_JMP32):
            # JMP32 | JA is "gotol", whose offset lives in imm.
            target = pc + 1 + (imm if cls == _BPF_JMP32 and op == _BPF_JA else off)
            if target <= pc:
                scan.backward_jumps += 1
            following = (target,) if op == _BPF_JA else (pc + 1, target)
        successors[pc] = following
        pc += 1
    scan.back_edges = _dfs_back_edges(successors)
    return scan


def _dfs_back_edges(successors: dict[int, tuple[int, ...]]) -> int:
    """Edges to an instruction still on the depth-first stack: the cycles.

    This is the kernel's own test before bounded loops (check_cfg() in
    kernel/bpf/verifier.c, "back-edge from insn %d to %d"): a backward jump
    to code that does not lead back, such as a shared ``return 0`` block
    clang placed earlier, is a cross edge and was always accepted.
    """
    if 0 not in successors:
        return 0
    on_stack, done = 1, 2
    state = {0: on_stack}
    stack = [(0, iter(successors[0]))]
    back_edges = 0
    while stack:
        node, pending = stack[-1]
        for nxt in pending:
            if nxt not in successors:  # out of the function: not ours to judge
                continue
            seen = state.get(nxt)
            if seen is None:
                state[nxt] = on_stack
                stack.append((nxt, iter(successors[nxt])))
                break
            if seen == on_stack:
                back_edges += 1
        else:
            state[node] = done
            stack.pop()
    return back_edges


def _resolve_calls(
    func: _Function,
    call_sites: list[tuple[int, int]],
    relocations: dict[int, dict[int, _Symbol]],
    functions: list[_Function],
) -> tuple[str, ...]:
    names: list[str] = []
    relocs = relocations.get(func.shndx, {})
    for slot, imm in call_sites:
        offset = func.start + slot * INSN_SIZE
        sym = relocs.get(offset)
        if sym is not None and sym.shndx is not None:
            shndx, target = sym.shndx, sym.value + (imm + 1) * INSN_SIZE
        else:
            shndx, target = func.shndx, offset + (imm + 1) * INSN_SIZE
        callee = next(
            (f.name for f in functions
             if f.shndx == shndx and f.start <= target < f.start + max(len(f.code), 1)),
            None,
        )
        if callee is not None and callee not in names:
            names.append(callee)
    return tuple(names)


# --- BTF (only what maps need) ---------------------------------------------------

_BTF_MAGIC = 0xEB9F
#: Length of a .BTF.ext header that has the core_relo_off/len fields.
_BTF_EXT_HDR_WITH_CORE = 32
# BTF kinds (include/uapi/linux/btf.h).
_INT, _PTR, _ARRAY, _STRUCT, _UNION, _ENUM = 1, 2, 3, 4, 5, 6
_TYPEDEF, _VOLATILE, _CONST, _RESTRICT, _FUNC_PROTO = 8, 9, 10, 11, 13
_VAR, _DATASEC, _FLOAT, _DECL_TAG, _TYPE_TAG, _ENUM64 = 14, 15, 16, 17, 18, 19
_LAST_KNOWN_KIND = _ENUM64
#: Bytes following struct btf_type: (fixed part, per vlen item).
_KIND_EXTRA = {_INT: (4, 0), _ARRAY: (12, 0), _STRUCT: (0, 12), _UNION: (0, 12),
               _ENUM: (0, 8), _FUNC_PROTO: (0, 8), _VAR: (4, 0), _DATASEC: (0, 12),
               _DECL_TAG: (4, 0), _ENUM64: (0, 12)}
_MODIFIERS = (_TYPEDEF, _VOLATILE, _CONST, _RESTRICT, _TYPE_TAG)
_SIZED = (_INT, _STRUCT, _UNION, _ENUM, _FLOAT, _ENUM64)
#: Deepest typedef/modifier chain followed; real BTF is far shallower.
_MAX_TYPE_DEPTH = 32
#: Size of a pointer on the BPF target.
_POINTER_SIZE = 8


@dataclass(frozen=True, slots=True)
class _BtfType:
    name: str
    kind: int
    size_or_type: int  # size for sized kinds, referenced type id otherwise
    array: tuple[int, int] | None = None  # ARRAY: (element type id, nelems)
    members: tuple[tuple[str, int], ...] = ()  # STRUCT/UNION: (name, type id)
    variables: tuple[int, ...] = ()  # DATASEC: VAR type ids


class _Btf:
    """The types of a .BTF section, indexed by type id (1-based)."""

    def __init__(self, types: list[_BtfType]) -> None:
        self.types = types

    @classmethod
    def parse(cls, cursor: _Cursor | None) -> _Btf | None:
        """Parse struct btf_header and the type section (include/uapi/linux/btf.h)."""
        if cursor is None:
            return None
        cursor.expect_magic(_BTF_MAGIC)
        hdr_len = cursor.u32(4)
        type_off, type_len, str_off, str_len = (cursor.u32(8 + 4 * i) for i in range(4))
        strings = cursor.slice(hdr_len + str_off, str_len)
        cursor.slice(hdr_len + type_off, type_len)  # the whole type section is there
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        types = [_BtfType("", 0, 0)]  # id 0 is void
        while pos < end:
            name_off, info, size_or_type = (cursor.u32(pos + 4 * i) for i in range(3))
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            if kind > _LAST_KNOWN_KIND:
                return None  # newer BTF than this reader: maps keep their names only
            pos += 12
            t = _BtfType(_string(strings, name_off), kind, size_or_type)
            if kind == _ARRAY:  # struct btf_array: type, index_type, nelems
                t = _replace(t, array=(cursor.u32(pos), cursor.u32(pos + 8)))
            elif kind in (_STRUCT, _UNION):  # struct btf_member: name_off, type, offset
                t = _replace(t, members=tuple(
                    (_string(strings, cursor.u32(pos + 12 * i)), cursor.u32(pos + 12 * i + 4))
                    for i in range(vlen)))
            elif kind == _DATASEC:  # struct btf_var_secinfo: type, offset, size
                t = _replace(t, variables=tuple(cursor.u32(pos + 12 * i) for i in range(vlen)))
            fixed, per_item = _KIND_EXTRA.get(kind, (0, 0))
            pos += fixed + per_item * vlen
            types.append(t)
        return cls(types)

    def get(self, type_id: int) -> _BtfType | None:
        return self.types[type_id] if 0 < type_id < len(self.types) else None

    def resolve(self, type_id: int) -> _BtfType | None:
        """Follow typedefs and qualifiers."""
        for _ in range(_MAX_TYPE_DEPTH):
            t = self.get(type_id)
            if t is None or t.kind not in _MODIFIERS:
                return t
            type_id = t.size_or_type
        return None

    def size(self, type_id: int, depth: int = 0) -> int | None:
        t = self.resolve(type_id)
        if t is None or depth > _MAX_TYPE_DEPTH:
            return None
        if t.kind in _SIZED:
            return t.size_or_type
        if t.kind == _PTR:
            return _POINTER_SIZE
        if t.array is not None:
            elem_size = self.size(t.array[0], depth + 1)
            return None if elem_size is None else elem_size * t.array[1]
        return None

    def pointee(self, type_id: int) -> int | None:
        """The type id a pointer type points to, or None if not a pointer."""
        t = self.resolve(type_id)
        return t.size_or_type if t is not None and t.kind == _PTR else None

    def maps(self) -> dict[str, dict[str, int | None]]:
        """Map name -> its BTF-defined fields, for every VAR of DATASEC .maps.

        ``__uint(name, N)`` is ``int (*name)[N]``: the value is the array
        dimension.  ``__type(key, T)`` is ``T *key``: the size is T's size.
        """
        result: dict[str, dict[str, int | None]] = {}
        for datasec in self.types:
            if datasec.kind != _DATASEC or datasec.name != MAPS_SECTION:
                continue
            for var_id in datasec.variables:
                var = self.get(var_id)
                definition = self.resolve(var.size_or_type) if var else None
                if var is None or definition is None or definition.kind != _STRUCT:
                    continue
                fields: dict[str, int | None] = {}
                for name, member_type in definition.members:
                    target = self.pointee(member_type)
                    if target is None:
                        continue
                    if name in ("key", "value"):
                        fields[f"{name}_size"] = self.size(target)
                    else:
                        array = self.resolve(target)
                        if array is not None and array.array is not None:
                            fields[name] = array.array[1]
                result[var.name] = fields
        return result


def _string(strings: bytes, offset: int) -> str:
    if offset >= len(strings):
        return ""
    return strings[offset:].split(b"\0", 1)[0].decode("utf-8", errors="replace")


class _Cursor:
    """Bounds-checked reads from one section: an overrun is a format error."""

    def __init__(self, data: bytes, fmt: str, section: str, path: str) -> None:
        self.data, self.fmt, self.section, self.path = data, fmt, section, path

    @classmethod
    def of(cls, elf: ELFFile, section: str, fmt: str, path: str) -> _Cursor | None:
        """A cursor over the named section, or None if it is absent or empty."""
        data = _section_data(elf, section)
        return cls(data, fmt, section, path) if data else None

    def error(self, problem: str) -> BpfObjectFormatError:
        return BpfObjectFormatError(f"{self.path} is malformed: its {self.section} {problem}.")

    def expect_magic(self, magic: int) -> None:
        if self.u16(0) != magic:
            raise self.error("section does not start with the BTF magic")

    def _read(self, code: str, offset: int) -> int:
        size = struct.calcsize(code)
        if offset < 0 or offset + size > len(self.data):
            raise self.error("section is truncated")
        value: int = struct.unpack_from(self.fmt + code, self.data, offset)[0]
        return value

    def u16(self, offset: int) -> int:
        return self._read("H", offset)

    def u32(self, offset: int) -> int:
        return self._read("I", offset)

    def slice(self, offset: int, length: int) -> bytes:
        if offset < 0 or offset + length > len(self.data):
            raise self.error("section is truncated")
        return self.data[offset:offset + length]


def _count_core_relocations(cursor: _Cursor | None) -> int:
    """Sum of num_info over the core_relo part of .BTF.ext (struct
    btf_ext_header in libbpf: the core_relo fields exist when hdr_len >= 32)."""
    if cursor is None:
        return 0
    cursor.expect_magic(_BTF_MAGIC)
    hdr_len = cursor.u32(4)
    if hdr_len < _BTF_EXT_HDR_WITH_CORE:
        return 0
    start = hdr_len + cursor.u32(24)
    end = start + cursor.u32(28)
    if end == start:
        return 0
    record_size = cursor.u32(start)
    count, pos = 0, start + 4
    while pos < end:
        num_info = cursor.u32(pos + 4)
        count += num_info
        pos += 8 + num_info * record_size
    return count


# --- Maps -------------------------------------------------------------------------

#: struct bpf_map_def: type, key_size, value_size, max_entries (then map_flags).
_LEGACY_MAP_FIELDS = 4


def _maps(
    elf: ELFFile, symbols: list[_Symbol], btf: _Btf | None, fmt: str, path: str
) -> tuple[MapInfo, ...]:
    result: list[MapInfo] = []
    for index, section in enumerate(elf.iter_sections()):
        if section.name not in (MAPS_SECTION, LEGACY_MAPS_SECTION):
            continue
        defined = sorted(
            (s for s in symbols if s.shndx == index and s.kind == "STT_OBJECT"),
            key=lambda s: s.value,
        )
        if section.name == MAPS_SECTION:
            described = btf.maps() if btf else {}
            for sym in defined:
                fields = described.get(sym.name, {})
                result.append(MapInfo(
                    name=sym.name,
                    map_type=fields.get("type"),
                    key_size=fields.get("key_size"),
                    value_size=fields.get("value_size"),
                    max_entries=fields.get("max_entries"),
                ))
        else:
            cursor = _Cursor(section.data(), fmt, LEGACY_MAPS_SECTION, path)
            for sym in defined:
                map_type, key, value, entries = (
                    cursor.u32(sym.value + 4 * i) for i in range(_LEGACY_MAP_FIELDS)
                )
                result.append(MapInfo(name=sym.name, map_type=map_type, key_size=key,
                                      value_size=value, max_entries=entries))
    return tuple(result)


# --- Kernel requirements -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Requirement:
    since: kf.KernelVersion
    reason: str  # a whole phrase ending in "needs X.Y"


def reachable_subprograms(info: ObjectInfo, program: ProgramInfo) -> tuple[ProgramInfo, ...]:
    """The subprograms a program calls, directly or not: libbpf appends each
    to the program, so they count toward its size and its helpers."""
    by_name = {p.name: p for p in (*info.subprograms, *info.programs)}
    seen: dict[str, ProgramInfo] = {}
    pending = list(program.calls)
    while pending:
        name = pending.pop()
        callee = by_name.get(name)
        if callee is None or name in seen or callee is program:
            continue
        seen[name] = callee
        pending.extend(callee.calls)
    return tuple(seen.values())


def _requirements(info: ObjectInfo) -> list[_Requirement]:
    """Every feature the object uses, with the kernel that brought it."""
    v = kf.format_version
    found: list[_Requirement] = []
    # helper id -> programs using it, and program kind -> programs of that kind
    helper_users: dict[int, list[str]] = {}
    kind_users: dict[str, list[str]] = {}
    for program in info.programs:
        body = (program, *reachable_subprograms(info, program))
        kind_users.setdefault(program.prog_type, []).append(program.name)
        for helper in sorted({h for f in body for h in f.helpers}):
            helper_users.setdefault(helper, []).append(program.name)
        loops = sum(f.back_edges for f in body)
        if loops:
            found.append(_Requirement(kf.BOUNDED_LOOPS, (
                f"bounded loops ({_count(loops, 'back-edge')} in {program.name}) "
                f"need {v(kf.BOUNDED_LOOPS)}")))
        calls = sum(f.bpf_calls for f in body)
        if calls:
            found.append(_Requirement(kf.BPF_TO_BPF_CALLS, (
                f"bpf-to-bpf calls ({calls} in {program.name}) "
                f"need {v(kf.BPF_TO_BPF_CALLS)}")))
        found.extend(_size_requirements(program.name, [s for f in body for s in f.helper_sizes]))
        size = sum(f.instructions for f in body)
        if size > kf.MAX_INSNS_BEFORE_5_2:
            found.append(_Requirement(kf.LARGE_PROGRAMS, (
                f"more than {kf.MAX_INSNS_BEFORE_5_2} instructions ({size} in "
                f"{program.name}, with its subprograms) needs {v(kf.LARGE_PROGRAMS)}")))

    for kind, programs in kind_users.items():
        since = kf.PROGRAM_TYPES.get(kind)
        if since is not None:
            found.append(_Requirement(
                since, f"program type {kind} ({', '.join(programs)}) needs {v(since)}"))
    for helper, programs in helper_users.items():
        known = kf.HELPERS.get(helper)
        # Helper ids only grow, so an id beyond the table is at least as new
        # as its newest row.
        since = known.since if known else kf.newest_known()
        what = f"helper {kf.helper_name(helper)} (id {helper})"
        if known is None:
            what += ", newer than libtrace's table,"
        found.append(_Requirement(since, f"{what} needs {v(since)} ({', '.join(programs)})"))
    for m in info.maps:
        if m.map_type is None:
            continue
        known_map = kf.MAP_TYPES.get(m.map_type)
        since = known_map.since if known_map else kf.newest_known()
        found.append(_Requirement(since, (
            f"map {m.name} of type {m.type_name} ({m.map_type}) needs {v(since)}")))
    if info.global_data:
        found.append(_Requirement(kf.GLOBAL_DATA, (
            f"global data ({', '.join(info.global_data)}) needs {v(kf.GLOBAL_DATA)}")))
    return found


def _size_requirements(program: str, sizes: list[HelperSize]) -> list[_Requirement]:
    """What the helper size arguments of one program ask of the verifier."""
    v = kf.format_version
    found = []
    for size in sizes:
        if not size.bounded:
            found.append(_Requirement(kf.SPILLED_SCALAR_BOUNDS, (
                f"{size.helper}'s size (argument {size.argument}) in {program} is not bounded "
                f"in the register of the call ({size.source}): older verifiers lose a spilled "
                f"scalar's bounds, needs {v(kf.SPILLED_SCALAR_BOUNDS)}")))
        elif size.low == 0:
            found.append(_Requirement(kf.ZERO_SIZE_ARGUMENTS, (
                f"{size.helper}'s size in {program} may be 0, which "
                f"needs {v(kf.ZERO_SIZE_ARGUMENTS)} (ARG_CONST_SIZE_OR_ZERO)")))
    return found


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _too_large(info: ObjectInfo) -> list[str]:
    """Programs over the limit of every kernel."""
    reasons = []
    for program in info.programs:
        size = sum(f.instructions for f in (program, *reachable_subprograms(info, program)))
        if size > kf.MAX_INSNS:
            reasons.append(
                f"program {program.name} has {size} instructions with its subprograms, "
                f"more than the {kf.MAX_INSNS} any kernel accepts")
    return reasons


def _ordered(requirements: Iterable[_Requirement]) -> Iterator[_Requirement]:
    unique = {r.reason: r for r in requirements}.values()
    return iter(sorted(unique, key=lambda r: (tuple(-x for x in r.since), r.reason)))


def min_kernel(info: ObjectInfo) -> tuple[kf.KernelVersion, list[str]]:
    """The earliest mainline kernel that could load the object, and why.

    Returns:
        ``(version, reasons)``: reasons name every feature that needs more
        than the eBPF baseline, newest first.  CO-RE relocations do not raise
        the minimum (libbpf can take BTF from a file, see
        :func:`check_limits`); a program too large for any kernel adds a
        reason but cannot raise the version.
    """
    requirements = list(_ordered(_requirements(info)))
    version = max((r.since for r in requirements), default=kf.EBPF_BASELINE)
    return version, [r.reason for r in requirements] + _too_large(info)


def check_limits(info: ObjectInfo, kernel: kf.KernelVersion) -> list[str]:
    """Every reason the object would not load on a mainline ``kernel``.

    Args:
        info: what :func:`inspect_object` found.
        kernel: ``(major, minor)``.

    Returns:
        The reasons, newest requirement first; an empty list means it loads.
        CO-RE relocations on a kernel before 5.4 add a reason (kernel BTF or
        an external BTF file is needed) although libbpf could be handed one.
    """
    reasons = [r.reason for r in _ordered(_requirements(info)) if r.since > kernel]
    if info.core_relocations and kernel < kf.KERNEL_BTF:
        reasons.append(
            f"{info.core_relocations} CO-RE relocations: needs kernel BTF "
            f"({kf.format_version(kf.KERNEL_BTF)}+ with CONFIG_DEBUG_INFO_BTF) "
            "or an external BTF file")
    return reasons + _too_large(info)

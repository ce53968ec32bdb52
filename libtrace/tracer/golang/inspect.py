"""Inspect a Go binary for TLS uprobes: version, ABI, symbols, RET offsets, struct offsets.

Theory of operation: :class:`~._image.Image` maps the ELF file; the Go
version and module come from ``.go.buildinfo`` (:mod:`._buildinfo`);
function addresses come from ``.symtab`` when the binary has one, else from
the pc-line table that stripping keeps (:mod:`._pclntab`).  A uretprobe
rewrites the return address on the stack, which Go's stack growth and
traceback then trip over, so returns are probed with plain uprobes on every
``RET`` instruction: capstone disassembles each probed function and the
offsets of its ``RET``\\ s (relative to the function's entry) are reported.
Struct member offsets come from DWARF when present, else from the
per-version table (:mod:`._offsets`).

Offsets in the result:

* ``address``: the function's link-time virtual address.
* ``offset``: its file offset (``address - p_vaddr + p_offset`` of its
  ``PT_LOAD``), which is what ``perf_event_open``/libbpf uprobes take.
* ``ret_offsets``: each ``RET``'s distance from the function entry, so a
  return probe goes at ``offset + r`` in the file or ``address + r`` in memory.
* ``entry_offset``: where the entry probe goes, as a distance from the entry
  (:func:`entry_probe_offset`): usually the conditional jump of the stack
  check, an instruction the kernel emulates instead of single-stepping.
* ``copy_offsets``: each ``CALL runtime.memmove`` in the function, as a
  distance from the entry (:func:`call_offsets`).  ``Read`` has exactly one in
  every Go release here (1.15-1.27): the inlined ``bytes.Reader.Read`` that
  copies the plaintext into the caller's buffer, where a probe (a call: the
  kernel emulates it) sees the bytes and their count without its RETs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._buildinfo import read_buildinfo, version_tuple
from ._image import FOREIGN_ERRORS, CorruptBinaryError, Image, NotGoError
from ._offsets import from_dwarf, from_table
from ._pclntab import locate

#: The functions whose entries and returns the Go TLS tracer probes.
TLS_WRITE = "crypto/tls.(*Conn).Write"
TLS_READ = "crypto/tls.(*Conn).Read"
#: Writes are captured here: it runs under the conn's output lock (go_tls.bpf.c).
TLS_WRITE_RECORD = "crypto/tls.(*Conn).writeRecordLocked"
TLS_FUNCTIONS = (TLS_WRITE, TLS_READ, TLS_WRITE_RECORD)
#: What Read calls to copy the plaintext out (see ``copy_offsets``).
MEMMOVE = "runtime.memmove"

#: A function larger than this is not one we disassemble (Read/Write are ~2 KiB).
MAX_FUNCTION_SIZE = 1 << 20

#: The first Go release with the register ABI, per architecture (ELF e_machine names).
REGISTER_ABI_SINCE = {"EM_X86_64": (1, 17), "EM_AARCH64": (1, 18)}


@dataclass(frozen=True, slots=True)
class GoFunction:
    """One function found in the binary."""

    name: str
    #: Link-time virtual address of the entry.
    address: int
    #: File offset of the entry (for uprobes).
    offset: int
    size: int
    #: Offsets of each RET instruction from the entry.
    ret_offsets: tuple[int, ...]
    #: Offset from the entry of the instruction the entry probe goes on.
    entry_offset: int = 0
    #: Offsets from the entry of each ``CALL runtime.memmove`` (x86-64 only).
    copy_offsets: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class GoBinary:
    """What :func:`inspect_binary` learnt about one Go binary."""

    path: Path
    go_version: str
    #: The main package path and main module path from the build information.
    main_path: str | None
    module_path: str | None
    arch: str
    #: ``"register"`` (ABIInternal, Go ≥ 1.17 on amd64) or ``"stack"``.
    abi: str
    #: True when the binary has no ``.symtab`` (``-ldflags=-s``).
    stripped: bool
    pie: bool
    #: ``"symtab"`` or ``"pclntab"``: where the function addresses came from.
    symbol_source: str
    #: The pc-line table layout (``"1.2"``, ``"1.16"``, ``"1.18"``, ``"1.20"``).
    pclntab_format: str
    functions: dict[str, GoFunction]
    offsets: dict[str, int] = field(default_factory=dict)
    #: ``"dwarf"``, ``"table"``, ``"table:go1.NN"`` (nearest older version) or ``"none"``.
    offsets_source: str = "none"

    def to_json(self) -> dict[str, Any]:
        """The ``libtrace go-inspect --json`` document."""
        return {
            "path": str(self.path),
            "go_version": self.go_version,
            "main_path": self.main_path,
            "module_path": self.module_path,
            "arch": self.arch,
            "abi": self.abi,
            "stripped": self.stripped,
            "pie": self.pie,
            "symbol_source": self.symbol_source,
            "pclntab_format": self.pclntab_format,
            "symbols": {
                name: {
                    "address": f.address,
                    "offset": f.offset,
                    "size": f.size,
                    "ret_offsets": list(f.ret_offsets),
                    "entry_offset": f.entry_offset,
                    "copy_offsets": list(f.copy_offsets),
                }
                for name, f in self.functions.items()
            },
            "offsets": dict(self.offsets),
            "offsets_source": self.offsets_source,
        }


_ARCH_NAMES = {"EM_X86_64": "amd64", "EM_AARCH64": "arm64", "EM_386": "386", "EM_ARM": "arm"}


def abi_of(machine: str, go_version: str) -> str:
    """``"register"`` when Go ``go_version`` on ``machine`` passes arguments in registers."""
    since = REGISTER_ABI_SINCE.get(machine)
    if since is None or version_tuple(go_version) < since:
        return "stack"
    return "register"


def ret_offsets(code: bytes, machine: str, address: int = 0) -> tuple[int, ...]:
    """Offsets of every return instruction in ``code`` (a whole function).

    Capstone decodes linearly; bytes it cannot decode are skipped (Go pads
    functions with INT3, which decodes, so skips only happen on damaged code).

    Raises:
        GoBinaryError: the architecture is not one we can disassemble.
    """
    import capstone  # type: ignore[import-untyped]  # deferred: only inspection needs it

    if machine == "EM_X86_64":
        cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        ret_ids = {capstone.x86.X86_INS_RET}
    elif machine == "EM_AARCH64":
        cs = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
        ret_ids = {capstone.arm64.ARM64_INS_RET}
    else:
        raise NotGoError(f"cannot disassemble {machine} code (amd64 and arm64 only)")
    cs.detail = False
    cs.skipdata = True
    found = []
    for insn in cs.disasm(code, address):
        if insn.id in ret_ids:
            found.append(insn.address - address)
    return tuple(found)


def _x86_detailed() -> Any:
    """A capstone x86-64 disassembler with operand details (what each instruction
    reads and writes); bytes it cannot decode are skipped, as in :func:`ret_offsets`."""
    import capstone  # deferred: only inspection needs it (untyped: see ret_offsets)

    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    cs.detail = True
    cs.skipdata = True
    return cs


#: How far into a function the entry probe may move (Go's stack check is two
#: or three instructions; a large frame's, up to five).
PROLOGUE_INSTRUCTIONS = 6


def entry_probe_offset(code: bytes, machine: str) -> int:
    """Where in a function (``code``, from its entry) the entry probe goes.

    A uprobe on an instruction the kernel has to single-step costs two traps
    (the breakpoint, then the step out of line); on one it emulates, only the
    first: on this project's test machine (a virtual machine) 15-17 us against
    1.1-1.2 us per hit (``benchmarks/_uprobe_trap.py``).  x86's uprobes emulate
    conditional jumps, and Go's prologue is ``CMPQ SP, 16(R14); JBE
    morestack`` (or ``LEAQ -n(SP), R12; CMPQ R12, 16(R14); JBE`` for a large
    frame).  So the probe goes on the first conditional jump (or ``PUSHQ`` of a
    register, also emulated on kernels that have push emulation) provided
    every instruction before it writes nothing the probe programs read:
    only the flags and the scratch registers R12/R13, which Go's register ABI
    uses for neither arguments nor the goroutine (R14), and no memory or stack
    pointer.  Registers are then those of the entry.  Anything else (the stack
    ABI's ``MOVQ FS:-8, CX``, an unknown shape, arm64) keeps the entry: 0.
    A stack growth re-runs the prologue, so the moved probe fires exactly
    where the entry probe would, a second time after ``morestack``.
    """
    if machine != "EM_X86_64":
        return 0
    from capstone import CS_AC_WRITE, x86

    jumps = {
        x86.X86_INS_JA, x86.X86_INS_JAE, x86.X86_INS_JB, x86.X86_INS_JBE,
        x86.X86_INS_JE, x86.X86_INS_JNE, x86.X86_INS_JG, x86.X86_INS_JGE,
        x86.X86_INS_JL, x86.X86_INS_JLE, x86.X86_INS_JO, x86.X86_INS_JNO,
        x86.X86_INS_JP, x86.X86_INS_JNP, x86.X86_INS_JS, x86.X86_INS_JNS,
    }  # fmt: skip
    scratch = {x86.X86_REG_EFLAGS, x86.X86_REG_R12, x86.X86_REG_R13}
    for insn in _x86_detailed().disasm(code[: PROLOGUE_INSTRUCTIONS * 15], 0,
                                       PROLOGUE_INSTRUCTIONS):  # fmt: skip
        if insn.id == x86.X86_INS_INVALID:
            return 0  # bytes that do not decode: nothing is known to be safe to pass
        if insn.id in jumps:
            return int(insn.address)
        if insn.id == x86.X86_INS_PUSH and insn.operands[0].type == x86.X86_OP_REG:
            return int(insn.address)
        _, written = insn.regs_access()
        writes_memory = any(
            op.type == x86.X86_OP_MEM and op.access & CS_AC_WRITE for op in insn.operands
        )
        if writes_memory or not set(written) <= scratch:
            return 0
    return 0


def call_offsets(code: bytes, machine: str, address: int, target: int) -> tuple[int, ...]:
    """Offsets in ``code`` (a whole function linked at ``address``) of every direct
    ``CALL`` of ``target``; empty where the architecture is not x86-64."""
    if machine != "EM_X86_64":
        return ()
    from capstone import x86

    found = []
    for insn in _x86_detailed().disasm(code, address):
        if insn.id != x86.X86_INS_CALL or len(insn.operands) != 1:
            continue
        operand = insn.operands[0]
        if operand.type == x86.X86_OP_IMM and operand.imm == target:
            found.append(insn.address - address)
    return tuple(found)


def _function_bounds(image: Image, names: Iterable[str]) -> tuple[dict[str, tuple[int, int]], str]:
    """``{name: (address, size)}`` from ``.symtab``, else from the pc-line table."""
    wanted = set(names)
    bounds: dict[str, tuple[int, int]] = {}
    for name, value, size in image.function_symbols():
        if name in wanted and size:
            bounds[name] = (value, size)
    if bounds:
        return bounds, "symtab"
    return {}, "pclntab"


def inspect_binary(path: Path | str, functions: Iterable[str] = TLS_FUNCTIONS) -> GoBinary:
    """Inspect the Go binary at ``path``.

    Args:
        path: an ELF executable built by Go 1.13 or later.
        functions: the functions to locate and disassemble.

    Returns:
        A :class:`GoBinary`; functions absent from the binary (a program that
        never uses TLS) are simply missing from ``functions``.

    Raises:
        NotElfError: the file is not ELF.
        NotGoError: the file is ELF but not a Go binary.
        CorruptBinaryError: the file is truncated or its Go metadata is damaged.
        GoBinaryError: the file cannot be opened.
    """
    path = Path(path)
    names = tuple(functions)
    with Image(path) as image:
        try:
            return _inspect(image, names)
        except FOREIGN_ERRORS as exc:
            raise CorruptBinaryError(f"{path}: corrupt Go binary ({exc})") from exc


def _inspect(image: Image, names: tuple[str, ...]) -> GoBinary:
    info = read_buildinfo(image)
    table = locate(image)
    has_symtab = ".symtab" in image.sections
    # runtime.memmove rides along in the same pass over the tables (Read's copy).
    wanted = (*names, MEMMOVE)
    bounds, source = _function_bounds(image, wanted) if has_symtab else ({}, "pclntab")
    if source == "symtab" and not bounds.keys() & set(names):
        source = "pclntab"  # the symbols came from the table after all
    if len(bounds) < len(wanted):
        for name, function in table.find(set(wanted) - bounds.keys()).items():
            bounds[name] = (function.entry, function.size)
    memmove = bounds[MEMMOVE][0] if MEMMOVE in bounds else None
    found = {}
    for name in names:
        if name not in bounds:
            continue
        address, size = bounds[name]
        if not 0 < size <= MAX_FUNCTION_SIZE:
            raise CorruptBinaryError(f"{image.path}: {name} has an absurd size {size}")
        code = image.read(address, size)
        found[name] = GoFunction(
            name=name,
            address=address,
            offset=image.file_offset(address),
            size=size,
            ret_offsets=ret_offsets(bytes(code), image.machine),
            entry_offset=entry_probe_offset(bytes(code), image.machine),
            copy_offsets=(
                call_offsets(bytes(code), image.machine, address, memmove)
                if name == TLS_READ and memmove is not None
                else ()
            ),
        )
    dwarf = from_dwarf(image)
    if dwarf:
        offsets, offsets_source = dwarf, "dwarf"
    else:
        offsets, offsets_source = from_table(info.go_version)
    if image.machine != "EM_X86_64" and offsets_source != "dwarf":
        offsets, offsets_source = {}, "none"  # the table is measured on amd64 only
    return GoBinary(
        path=image.path,
        go_version=info.go_version,
        main_path=info.path,
        module_path=info.module,
        arch=_ARCH_NAMES.get(image.machine, image.machine),
        abi=abi_of(image.machine, info.go_version),
        stripped=not has_symtab,
        pie=image.pie,
        symbol_source=source,
        pclntab_format=table.format,
        functions=found,
        offsets=offsets,
        offsets_source=offsets_source,
    )

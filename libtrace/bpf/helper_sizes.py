"""Where each helper call's size argument gets its bounds, read from the instructions.

Theory of operation
-------------------
A helper that copies memory (``bpf_probe_read*``, ``bpf_perf_event_output``,
``bpf_ringbuf_output``) takes a size the verifier must prove bounded, and how
it proves that depends on the kernel:

* verifiers before 5.10 forget the bounds of a scalar spilled to the stack
  ("bpf: track spill/fill of bounded scalars"; 4.19 keeps only spilled
  pointers, 5.3-5.9 only constants), so a size that clang reloads from the
  stack is an unknown scalar there ("R5 min value is negative");
* 4.14 learns no lower bound from ``!= 0`` and its ``bpf_probe_read`` refuses
  a size that may be 0 (``ARG_CONST_SIZE``; ``_OR_ZERO`` came in 4.15).

So for every such call this module walks back from the call, following
register moves, to the instruction that gave the size register its value, and
accepts only a constant or the end of the in-register clamp sequence that
``LT_CLAMP`` in ``socket_trace.bpf.c`` emits (``r -= lo; if r <= span goto +1;
r = span; r += lo``), whose bounds every verifier since 4.14 learns.  Anything
else (a reload from the stack, arithmetic) is reported with the instruction.
The walk is linear, not a data-flow analysis: it is exact for what clang emits
right before a call, and a jump into the walked stretch would go unseen.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

#: helper id → (name, 1-based argument number of its size).
SIZE_ARGUMENTS: dict[int, tuple[str, int]] = {
    4: ("bpf_probe_read", 2),
    16: ("bpf_get_current_comm", 2),
    25: ("bpf_perf_event_output", 5),
    45: ("bpf_probe_read_str", 2),
    112: ("bpf_probe_read_user", 2),
    113: ("bpf_probe_read_kernel", 2),
    114: ("bpf_probe_read_user_str", 2),
    115: ("bpf_probe_read_kernel_str", 2),
    130: ("bpf_ringbuf_output", 3),
}

_INSN = struct.Struct("<BBhi")
_LD_IMM64 = 0x18
_CLASS = 0x07
_ALU, _JMP, _ALU64, _LDX = 0x04, 0x05, 0x07, 0x01
_OP = 0xF0
_ADD, _SUB, _MOV = 0x00, 0x10, 0xB0
_JLE = 0xB0
_CALL = 0x80
_SRC_X = 0x08  # the source is a register, not the immediate


@dataclass(frozen=True, slots=True)
class HelperSize:
    """How one call's size argument is bounded.

    ``low``/``high`` are the bounds the verifier learns in the call's register
    (None when nothing is proven); ``source`` says where the value came from.
    """

    pc: int  #: the call's instruction slot within its function
    helper: str
    argument: int
    low: int | None
    high: int | None
    source: str

    @property
    def bounded(self) -> bool:
        return self.low is not None


@dataclass(frozen=True, slots=True)
class _Insn:
    pc: int
    opcode: int
    dst: int
    src: int
    off: int
    imm: int


def _decode(code: bytes) -> list[_Insn]:
    insns, pc = [], 0
    while pc * 8 < len(code):
        opcode, regs, off, imm = _INSN.unpack_from(code, pc * 8)
        insns.append(_Insn(pc, opcode, regs & 0x0F, regs >> 4, off, imm))
        pc += 2 if opcode == _LD_IMM64 else 1
    return insns


def _writes(insn: _Insn, reg: int) -> bool:
    cls = insn.opcode & _CLASS
    if cls in (_ALU, _ALU64, _LDX) or insn.opcode == _LD_IMM64:
        return insn.dst == reg
    return False


def _is(insn: _Insn, opcode: int, reg: int) -> bool:
    return insn.opcode == opcode and insn.dst == reg


def _clamp_ending_at(insns: list[_Insn], i: int, reg: int) -> tuple[int, int] | None:
    """(lo, hi) if ``insns[i-3..i]`` is LT_CLAMP's sequence on ``reg``."""
    if i < 3:
        return None
    sub, jle, mov, add = insns[i - 3 : i + 1]
    k = 0  # BPF_K: immediate source
    if not (_is(sub, _ALU64 | _SUB | k, reg) and _is(add, _ALU64 | _ADD | k, reg)):
        return None
    if not (_is(jle, _JMP | _JLE | k, reg) and jle.off == 1 and _is(mov, _ALU64 | _MOV | k, reg)):
        return None
    if sub.imm != add.imm or jle.imm != mov.imm or sub.imm < 0 or jle.imm < 0:
        return None
    return add.imm, add.imm + mov.imm


def _describe(insn: _Insn) -> str:
    cls = insn.opcode & _CLASS
    if cls == _LDX:
        return f"r{insn.dst} loaded from r{insn.src}{insn.off:+d} (a stack reload when r10)"
    return f"r{insn.dst} computed by opcode {insn.opcode:#04x} at slot {insn.pc}"


def _trace_size(insns: list[_Insn], call: int, reg: int) -> tuple[int | None, int | None, str]:
    for i in range(call - 1, -1, -1):
        insn = insns[i]
        if insn.opcode == (_JMP | _CALL):
            if reg <= 5:  # calls clobber r1-r5: the size cannot come from before
                return None, None, f"r{reg} clobbered by the call at slot {insn.pc}"
            continue
        if not _writes(insn, reg):
            continue
        if insn.opcode in (_ALU64 | _MOV, _ALU | _MOV):  # mov reg, imm
            return insn.imm, insn.imm, f"the constant {insn.imm}"
        if insn.opcode in (_ALU64 | _MOV | _SRC_X, _ALU | _MOV | _SRC_X):
            reg = insn.src  # follow the copy
            continue
        clamp = _clamp_ending_at(insns, i, reg)
        if clamp is not None:
            return clamp[0], clamp[1], f"clamped in r{reg} to [{clamp[0]}, {clamp[1]}]"
        return None, None, _describe(insn)
    return None, None, f"r{reg} has no definition before the call"


def helper_sizes(code: bytes) -> list[HelperSize]:
    """Every size-taking helper call of one function, with what bounds its size."""
    insns = _decode(code)
    found = []
    for index, insn in enumerate(insns):
        if insn.opcode != (_JMP | _CALL) or insn.src != 0 or insn.imm not in SIZE_ARGUMENTS:
            continue
        name, argument = SIZE_ARGUMENTS[insn.imm]
        low, high, source = _trace_size(insns, index, argument)
        found.append(HelperSize(insn.pc, name, argument, low, high, source))
    return found

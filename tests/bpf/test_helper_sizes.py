"""Every helper size in libtrace's objects is bounded in the call's register.

Verifiers before 5.10 lose the bounds of a scalar spilled to the stack, and
4.14's refuses a probe_read size that may be 0: a size must be a constant or
LT_CLAMP'd right before the call.  The check is shown to catch a size reloaded
from the stack (tests/bpf/data/sizes.bpf.c), the shape that made 4.19 and 5.4
refuse lt_exit_readv.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from libtrace.bpf import kernel_features as kf
from libtrace.bpf.build import ALL_VARIANTS, SOURCE_DIR, object_path
from libtrace.bpf.helper_sizes import helper_sizes
from libtrace.bpf.objinfo import check_limits, inspect_object

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("variant", ALL_VARIANTS, ids=lambda v: v.name)
def test_every_helper_size_of_every_variant_is_clamped_or_constant(variant) -> None:
    info = inspect_object(object_path(variant))
    sizes = [(p.name, s) for p in info.programs for s in p.helper_sizes]

    assert len(sizes) > 50  # every data program copies and outputs
    unproven = [(name, s.helper, s.source) for name, s in sizes if not s.bounded]
    assert unproven == []
    assert all(s.low >= 1 for _, s in sizes)  # 4.14's probe_read: never 0
    assert {s.helper for _, s in sizes} >= {
        "bpf_ringbuf_output" if variant.ringbuf else "bpf_perf_event_output",
        "bpf_probe_read_user" if variant.probe_read_user else "bpf_probe_read",
    }


@pytest.fixture(scope="module")
def sizes_object(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("clang") is None:
        pytest.skip("needs clang (scripts/install-deps.sh installs it)")
    out = tmp_path_factory.mktemp("sizes") / "sizes.bpf.o"
    subprocess.run(
        ["clang", "-O2", "-g", "-D__TARGET_ARCH_x86", "-target", "bpf", f"-I{DATA}",
         f"-I{SOURCE_DIR}", "-c", str(DATA / "sizes.bpf.c"), "-o", str(out)],
        check=True,
    )  # fmt: skip
    return out


def test_a_size_reloaded_from_the_stack_is_caught(sizes_object: Path) -> None:
    info = inspect_object(sizes_object)
    by_name = {p.name: p.helper_sizes for p in info.programs}

    (spilled,) = by_name["spilled_size"]
    assert not spilled.bounded and "r10" in spilled.source
    (clamped,) = by_name["clamped_size"]
    assert (clamped.low, clamped.high) == (1, 64)
    (constant,) = by_name["constant_size"]
    assert (constant.low, constant.high) == (8, 8)
    reasons = check_limits(info, (5, 4))
    assert len(reasons) == 1 and "spilled_size" in reasons[0]
    assert kf.format_version(kf.SPILLED_SCALAR_BOUNDS) in reasons[0]
    assert check_limits(info, kf.SPILLED_SCALAR_BOUNDS) == []


def _insn(opcode: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", opcode, src << 4 | dst, off, imm)


def test_a_size_that_may_be_zero_needs_4_15_and_a_copy_is_followed() -> None:
    """Hand-assembled: r9 clamped to [0, 16] then copied to r2 for probe_read."""
    code = b"".join([
        _insn(0x17, dst=9, imm=0),  # r9 -= 0
        _insn(0xB5, dst=9, off=1, imm=16),  # if r9 <= 16 goto +1
        _insn(0xB7, dst=9, imm=16),  # r9 = 16
        _insn(0x07, dst=9, imm=0),  # r9 += 0
        _insn(0xBF, dst=2, src=9),  # r2 = r9
        _insn(0x85, imm=4),  # call bpf_probe_read
        _insn(0x95),  # exit
    ])  # fmt: skip
    (size,) = helper_sizes(code)

    assert (size.helper, size.low, size.high) == ("bpf_probe_read", 0, 16)


def test_a_size_defined_before_an_intervening_call_is_refused() -> None:
    code = b"".join([
        _insn(0xB7, dst=2, imm=8),  # r2 = 8
        _insn(0x85, imm=14),  # call: clobbers r1-r5
        _insn(0x85, imm=4),  # call bpf_probe_read with r2 from before
        _insn(0x95),
    ])  # fmt: skip
    (size,) = helper_sizes(code)

    assert not size.bounded and "clobbered" in size.source

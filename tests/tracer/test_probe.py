"""The load-time choices of probe.py, from given kernel features (no kernel needed)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from libtrace.bpf.build import Variant
from libtrace.tracer.probe import (
    ARGS_AT_EXIT_PREFIX,
    ARGS_FROM_STACK_PREFIX,
    KernelFeatures,
    choose_args_at_exit,
    choose_variant,
)

MODERN = KernelFeatures(
    btf=True, ringbuf=True, probe_read_user=True, syscall_tracepoints=frozenset(),
    task_pt_regs=True,
)  # fmt: skip
#: 5.8 to 5.14: everything but the two helpers.
WITHOUT_TASK_REGS = replace(MODERN, task_pt_regs=False)


def args_at_exit(
    features: KernelFeatures, force: frozenset[str] = frozenset()
) -> tuple[str | None, str]:
    variant, reasons = choose_variant(features, force)
    chosen = choose_args_at_exit(features, variant, force, reasons)
    return chosen, reasons[-1]


def test_a_kernel_with_the_helpers_reads_the_arguments_through_them():
    chosen, reason = args_at_exit(MODERN)
    assert chosen == ARGS_AT_EXIT_PREFIX
    assert reason.endswith(": on (bpf_task_pt_regs)")


@pytest.mark.parametrize(
    ("features", "force", "why"),
    [
        (MODERN, frozenset({"stack-regs"}), "forced by stack-regs"),
        (MODERN, frozenset({"probe-read"}), "needs the object with bpf_probe_read_user"),
        (WITHOUT_TASK_REGS, frozenset(), "the kernel lacks bpf_task_pt_regs"),
    ],
    ids=["forced", "probe-read", "5.10"],
)
def test_a_btf_object_without_them_reads_the_registers_on_the_kernel_stack(features, force, why):
    chosen, reason = args_at_exit(features, force)
    assert chosen == ARGS_FROM_STACK_PREFIX
    assert "from the kernel stack: " in reason and why in reason


@pytest.mark.parametrize(
    ("features", "force", "why"),
    [
        (MODERN, frozenset({"enter-args"}), "forced by enter-args"),
        (MODERN, frozenset({"no-btf"}), "needs a BTF object"),
        (replace(MODERN, btf=False), frozenset(), "needs a BTF object"),
    ],
    ids=["forced", "no-btf", "no-kernel-btf"],
)
def test_otherwise_the_enter_programs_save_them(features, force, why):
    chosen, reason = args_at_exit(features, force)
    assert chosen is None
    assert why in reason


def test_enter_args_is_a_compat_switch_and_leaves_the_object_alone():
    variant, _ = choose_variant(MODERN, frozenset({"enter-args"}))
    assert variant == Variant()

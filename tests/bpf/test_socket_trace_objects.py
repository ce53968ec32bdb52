"""The compiled socket_trace objects stay within what their kernels load.

Read statically from the ELF files (libtrace.bpf.objinfo), so this holds for
kernels that cannot be booted here: the object a 4.14 kernel without BTF
would load must have no loops, no global data, no bpf-to-bpf calls, at most
4096 instructions per program and only helpers 4.14 has.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from libtrace.bpf.build import ALL_VARIANTS, OLDEST_VARIANT, object_path
from libtrace.bpf.objinfo import check_limits, inspect_object
from libtrace.tracer.batches import FLUSH_PROGRAM
from libtrace.tracer.probe import (
    DATA_SYSCALLS,
    FD_SYSCALLS,
    NO_BTF_SYSCALLS,
    SYSCALLS,
    with_args_at_exit_only,
)

ROOT = Path(__file__).resolve().parents[2]

#: The Go TLS programs (go_tls.bpf.c) and their sections: bare uprobes are
#: attached per process by user space; the sched tracepoints follow exec/exit.
GO_TLS_PROGRAMS = {
    "lt_go_tls_read_enter": "uprobe",
    "lt_go_tls_read_return": "uprobe",
    "lt_go_tls_read_copy": "uprobe",
    "lt_go_tls_write_record": "uprobe",
    "lt_sched_process_exec": "tracepoint/sched/sched_process_exec",
    "lt_sched_process_exit": "tracepoint/sched/sched_process_exit",
}
GO_TLS_SECTIONS = set(GO_TLS_PROGRAMS.values())

#: The pre-5.2 verifier's limit on instructions per program.
OLD_INSN_LIMIT = 4096


@pytest.mark.parametrize("variant", ALL_VARIANTS, ids=[v.name for v in ALL_VARIANTS])
def test_every_variant_fits_the_old_instruction_limit_without_loops(variant):
    """Every program that kernels before 5.15 load (the exits that read their own
    arguments and the flush of their batches load only on 5.15+: see the next test)."""
    info = inspect_object(object_path(variant))
    assert info.license == "GPL"
    for program in info.programs:
        if with_args_at_exit_only(program.name):
            continue
        assert program.instructions <= OLD_INSN_LIMIT, program.name
        assert program.back_edges == 0, program.name
        assert program.bpf_calls == 0, program.name


@pytest.mark.parametrize("variant", [v for v in ALL_VARIANTS if v.args_at_exit],
                         ids=lambda v: v.name)  # fmt: skip
def test_the_programs_only_5_15_loads_need_no_more_than_5_15(variant):
    info = inspect_object(object_path(variant))
    newest = tuple(p for p in info.programs if with_args_at_exit_only(p.name))
    assert len(newest) == len(DATA_SYSCALLS) + variant.batches
    assert check_limits(replace(info, programs=newest), (5, 15)) == []
    flush = [p for p in newest if p.name == FLUSH_PROGRAM]
    assert [(p.section, p.back_edges > 0) for p in flush] == [("syscall", True)] * variant.batches


@pytest.mark.parametrize("variant", ALL_VARIANTS, ids=[v.name for v in ALL_VARIANTS])
def test_every_variant_has_one_program_per_hooked_syscall_edge(variant):
    info = inspect_object(object_path(variant))
    syscalls = SYSCALLS + (FD_SYSCALLS if variant.btf else NO_BTF_SYSCALLS)
    expected = {f"tracepoint/syscalls/sys_{edge}_{name}" for name in syscalls
                for edge in ("enter", "exit")}
    if not variant.btf:  # close's exit only moves the BTF variant's fd generation
        expected.remove("tracepoint/syscalls/sys_exit_close")
    expected |= set(GO_TLS_SECTIONS)
    # Forked children inherit their parent's sockets (no BTF), or start a fresh
    # fd generation (BTF).
    expected.add("tracepoint/sched/sched_process_fork")
    if variant.batches:  # run by the tracer, attached nowhere
        expected.add("syscall")
    assert {p.section for p in info.programs} == expected


def test_the_programs_the_tracer_attaches_first_are_the_btf_variants_forgetting_ones():
    """Names, not sections: a renamed program would silently lose its place first."""
    from libtrace.tracer.tracer import FORGETTING_PROGRAMS

    newest = next(v for v in reversed(ALL_VARIANTS) if v.btf)
    info = inspect_object(object_path(newest))
    sections = {p.name: p.section for p in info.programs}
    assert set(FORGETTING_PROGRAMS) <= sections.keys()
    forgetting = {sections[name].split("/")[-1].removeprefix("sys_enter_")
                  .removeprefix("sys_exit_").removeprefix("sched_process_")
                  for name in FORGETTING_PROGRAMS}  # fmt: skip
    assert forgetting >= {"close", "fork", *FD_SYSCALLS}


@pytest.mark.parametrize("variant", ALL_VARIANTS, ids=[v.name for v in ALL_VARIANTS])
def test_every_variant_carries_the_go_tls_uprobes_and_process_tracepoints(variant):
    info = inspect_object(object_path(variant))
    sections = {p.name: p.section for p in info.programs}
    assert {name: sections.get(name) for name in GO_TLS_PROGRAMS} == GO_TLS_PROGRAMS


def test_the_oldest_variant_loads_on_4_14():
    info = inspect_object(object_path(OLDEST_VARIANT))
    assert check_limits(info, (4, 14)) == []
    assert info.global_data == ()
    assert info.core_relocations == 0  # no kernel BTF needed


def test_the_newest_variant_needs_what_it_uses():
    """The check can fail: the ring-buffer/CO-RE object would not load on 4.14."""
    newest = object_path(ALL_VARIANTS[0])
    reasons = " ".join(check_limits(inspect_object(newest), (4, 14)))
    assert "ringbuf" in reasons and "probe_read_user" in reasons and "BTF" in reasons


def test_a_first_compile_is_announced_once(tmp_path: Path) -> None:
    """A checkout's first use compiles the objects: a warning says so (seconds of
    silence otherwise), and the next use, finding them current, says nothing."""
    code = ("import logging; logging.basicConfig(format='%(message)s'); "
            "from libtrace.bpf.build import object_dir; print(object_dir())")  # fmt: skip
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "LIBTRACE_BPF_DIR": ""}
    runs = [subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                           text=True, check=True, timeout=300) for _ in range(2)]  # fmt: skip

    assert runs[0].stderr.startswith("compiling the BPF objects (8 variants"), runs[0].stderr
    assert runs[1].stderr == "" and runs[0].stdout == runs[1].stdout
    assert Path(runs[0].stdout.strip()).is_relative_to(tmp_path)

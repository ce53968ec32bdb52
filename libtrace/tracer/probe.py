"""Kernel feature probing, and the choice of the BPF object variant.

Features are found by trying them (libbpf's probe API loads a tiny program
or map), never by parsing the kernel version: distribution kernels backport
features, and a version says nothing about the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..bpf.build import Variant
from ..errors import ConfigError
from . import _libbpf, batches
from .batches import FLUSH_PROGRAM
from .mounts import tracing_dir

KERNEL_BTF = Path("/sys/kernel/btf/vmlinux")

#: Names accepted by ``force_compat`` / ``--force-compat``, each forcing one
#: old-kernel path on a kernel that would not need it.
COMPAT_SWITCHES = {
    "perfbuf": "perf buffer instead of the ring buffer (kernels before 5.8)",
    "probe-read": "bpf_probe_read instead of bpf_probe_read_user (kernels before 5.5)",
    "no-btf": "socket identity without BTF, from socket tracking and /proc",
    "perf-uprobes": "Go TLS uprobes as perf events, one per probe (kernels before 6.6)",
    "enter-args": "data syscalls' arguments saved at sys_enter, not read at the exit "
    "(kernels without BTF)",
    "stack-regs": "data syscalls' arguments read at the exit from the registers at the top "
    "of the kernel stack, not through bpf_task_pt_regs (kernels 5.2 to 5.14)",
    "no-batch": "each data event its own ring record, not gathered per CPU into batches "
    "(kernels before 5.15)",
}

#: The syscalls that move bytes (socket_trace.bpf.c's DATA_PROGRAMS).
DATA_SYSCALLS = (
    "read", "write", "readv", "writev", "sendto", "recvfrom", "sendmsg", "recvmsg",
    "sendmmsg", "recvmmsg",
)  # fmt: skip
#: The data syscalls' exit programs that read their own arguments are named so
#: (socket_trace.bpf.c's DATA_EXIT_REGS), where Variant.args_at_exit has them.
ARGS_AT_EXIT_PREFIX = "lt_exitr_"
#: And so where they read the registers at the top of the kernel stack
#: themselves (DATA_EXIT_STACK; every BTF object has them).
ARGS_FROM_STACK_PREFIX = "lt_exitk_"

#: Syscall tracepoints every variant attaches to.
SYSCALLS = (*DATA_SYSCALLS, "connect", "accept", "accept4", "close")
#: Extra ones the no-BTF variant needs to track sockets.
NO_BTF_SYSCALLS = ("socket", "bind")
#: Ones that may free an fd number, which the BTF variant's memory of
#: non-sockets follows (where one is missing, close_range before 5.9 or dup2
#: on arm64, nothing can call it).
FD_SYSCALLS = ("close_range", "dup2", "dup3", "execve", "execveat")


def with_args_at_exit_only(program: str) -> bool:
    """Whether the tracer loads ``program`` only where the data syscalls' exits
    read their own arguments (5.15+): those exits, and the flush of the
    batches they gather their events in."""
    return program.startswith(ARGS_AT_EXIT_PREFIX) or program == FLUSH_PROGRAM


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelFeatures:
    """What the running kernel offers the tracer."""

    btf: bool
    ringbuf: bool
    probe_read_user: bool
    syscall_tracepoints: frozenset[str]  #: syscalls with both enter and exit tracepoints
    #: bpf_task_pt_regs and bpf_get_current_task_btf in tracepoint programs (5.15+)
    task_pt_regs: bool = False


def probe_features() -> KernelFeatures:
    """Probe the running kernel (needs the privileges to load BPF)."""
    _libbpf.check_bpf_access()
    events = tracing_dir() / "events" / "syscalls"
    present = frozenset(
        name
        for name in (*SYSCALLS, *NO_BTF_SYSCALLS, *FD_SYSCALLS)
        if (events / f"sys_enter_{name}").is_dir() and (events / f"sys_exit_{name}").is_dir()
    )
    return KernelFeatures(
        btf=KERNEL_BTF.exists(),
        ringbuf=_libbpf.probe_map_type(_libbpf.BPF_MAP_TYPE_RINGBUF),
        probe_read_user=_libbpf.probe_helper(
            _libbpf.BPF_PROG_TYPE_TRACEPOINT, _libbpf.BPF_FUNC_probe_read_user
        ),
        syscall_tracepoints=present,
        task_pt_regs=all(
            _libbpf.probe_helper(_libbpf.BPF_PROG_TYPE_TRACEPOINT, helper)
            for helper in (_libbpf.BPF_FUNC_get_current_task_btf, _libbpf.BPF_FUNC_task_pt_regs)
        ),
    )


def validate_compat(force: frozenset[str] | set[str] | tuple[str, ...]) -> frozenset[str]:
    unknown = set(force) - set(COMPAT_SWITCHES)
    if unknown:
        raise ConfigError(
            f"unknown compat switch {', '.join(sorted(unknown))}; "
            f"choose from {', '.join(COMPAT_SWITCHES)}"
        )
    return frozenset(force)


def choose_variant(
    features: KernelFeatures, force: frozenset[str] = frozenset(), btf_file: str | None = None
) -> tuple[Variant, list[str]]:
    """The variant to load, and one sentence per choice saying why."""
    force = validate_compat(force)
    reasons = []

    def pick(switch: str, available: bool, feature: str) -> bool:
        if switch in force:
            reasons.append(f"{feature}: off (forced by {switch})")
            return False
        reasons.append(f"{feature}: {'on' if available else 'off (the kernel lacks it)'}")
        return available

    ringbuf = pick("perfbuf", features.ringbuf, "BPF ring buffer")
    probe_read_user = pick("probe-read", features.probe_read_user, "bpf_probe_read_user")
    btf = pick("no-btf", features.btf or btf_file is not None, "CO-RE socket identity (BTF)")
    if btf and not features.btf:
        reasons[-1] += f" from the external BTF {btf_file}"
    return Variant(ringbuf=ringbuf, probe_read_user=probe_read_user, btf=btf), reasons


def choose_args_at_exit(
    features: KernelFeatures, variant: Variant, force: frozenset[str], reasons: list[str]
) -> str | None:
    """Where the data syscalls' exit programs read their arguments (no enter
    program, nothing saved per call), as the prefix of the programs to load,
    or None for the enter/exit pairs; the reason is appended to ``reasons``.

    ``lt_exitr_*`` read the task's saved registers through bpf_task_pt_regs
    (5.15+; the BTF objects built with bpf_probe_read_user carry them);
    ``lt_exitk_*`` find the same registers at the top of the task's kernel
    stack themselves (every BTF object carries them: kernels 5.2-5.14)."""
    feature = "data syscall arguments read at the exit"
    if "enter-args" in force:
        reasons.append(f"{feature}: off (forced by enter-args)")
        return None
    if not variant.btf:
        reasons.append(f"{feature}: off (it needs a BTF object)")
        return None
    if "stack-regs" in force:
        why = "forced by stack-regs"
    elif not variant.args_at_exit:
        why = "bpf_task_pt_regs needs the object with bpf_probe_read_user"
    elif not features.task_pt_regs:
        why = "the kernel lacks bpf_task_pt_regs"
    else:
        reasons.append(f"{feature}: on (bpf_task_pt_regs)")
        return ARGS_AT_EXIT_PREFIX
    reasons.append(f"{feature}: on (from the kernel stack: {why})")
    return ARGS_FROM_STACK_PREFIX


def choose_batches(
    variant: Variant, args_at_exit: str | None, force: frozenset[str], reasons: list[str]
) -> bool:
    """Whether the data syscalls' exit programs gather their events per CPU and
    output a batch as one ring record (see batches.py), with the reason
    appended to ``reasons``.  Only the ``lt_exitr_*`` programs do (5.15+: a
    batch reads the task through its BTF pointer), and only into the ring
    buffer."""
    feature = "data events gathered per CPU into batches"
    if "no-batch" in force:
        reasons.append(f"{feature}: off (forced by no-batch)")
        return False
    if not (variant.batches and args_at_exit == ARGS_AT_EXIT_PREFIX):
        reasons.append(
            f"{feature}: off (only the ring buffer's bpf_task_pt_regs programs have them)"
        )
        return False
    if not batches.supported(_libbpf.num_possible_cpus()):
        reasons.append(f"{feature}: off (more CPUs than the flush walks)")
        return False
    reasons.append(f"{feature}: on")
    return True

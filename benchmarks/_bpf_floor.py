"""What the kernel's statistics charge a BPF program that does nothing.

``kernel.bpf_stats_enabled`` times each run between two clock reads, so even
an empty program is charged some nanoseconds per run (about 55 on this
project's 2-core machines): a floor under every "BPF ns per event" figure,
which no change to libtrace's programs can move.  :func:`empty_program_ns`
measures it where the figure is measured: an empty program on the exits of
``read`` and ``write`` (the file copy's syscalls), compiled with clang from
the source below, loaded and attached with the tracer's own libbpf bindings.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from libtrace.bpf.build import CLANG_FLAGS
from libtrace.errors import BpfError
from libtrace.tracer import _libbpf

from ._bpf_stats import lt_run_time

#: Named apart from libtrace's programs (``lt_*``), whose sums must not include them.
PREFIX = "floor_"
SOURCE = """
#define SEC(name) __attribute__((section(name), used))
char LICENSE[] SEC("license") = "GPL";
SEC("tracepoint/syscalls/sys_exit_read") int floor_exit_read(void *ctx) { return 0; }
SEC("tracepoint/syscalls/sys_exit_write") int floor_exit_write(void *ctx) { return 0; }
"""


def empty_program_ns(workload: Callable[[], object], syscalls: int) -> float | None:
    """BPF ns per syscall charged to empty programs on read and write exits while
    ``workload`` makes ``syscalls`` reads and writes; None without clang or the
    privileges (the caller reports that the floor is unknown)."""
    with tempfile.TemporaryDirectory(prefix="libtrace-floor-") as tmp:
        source, obj_path = Path(tmp) / "floor.bpf.c", Path(tmp) / "floor.bpf.o"
        source.write_text(SOURCE)
        try:
            subprocess.run(["clang", *CLANG_FLAGS, "-c", str(source), "-o", str(obj_path)],
                           check=True, capture_output=True)  # fmt: skip
        except (OSError, subprocess.CalledProcessError):
            return None
        try:
            with _libbpf.BpfObject.open(obj_path) as obj:
                obj.load()
                obj.attach_all()
                ns0, _ = lt_run_time((PREFIX,))
                workload()
                ns1, _ = lt_run_time((PREFIX,))
        except BpfError:
            return None
    return (ns1 - ns0) / syscalls

"""The kernel's own account of BPF run time: ``kernel.bpf_stats_enabled``.

With the sysctl on, the kernel counts each program's runs and nanoseconds
(``run_cnt``/``run_time_ns`` in ``bpftool prog show``); off by default because
the counting itself costs a little.  :func:`bpf_stats` turns it on for a block
and restores it; :func:`lt_run_time` sums libtrace's programs (named ``lt_*``).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")
PROGRAM_PREFIX = "lt_"


@contextlib.contextmanager
def bpf_stats() -> Iterator[bool]:
    """Enable BPF run-time statistics for the block; yields whether that worked."""
    try:
        before = SYSCTL.read_text().strip()
        SYSCTL.write_text("1\n")
    except OSError:
        yield False
        return
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            SYSCTL.write_text(before + "\n")


def program_runs() -> dict[str, tuple[int, int]]:
    """(run_time_ns, run_cnt) of every loaded program, by the name bpftool shows
    (the whole name where the program has BTF, else the kernel's first 15
    characters)."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
                         check=False).stdout  # fmt: skip
    runs: dict[str, tuple[int, int]] = {}
    for prog in json.loads(out or "[]"):
        ns, count = runs.get(str(prog.get("name", "")), (0, 0))
        runs[str(prog.get("name", ""))] = (
            ns + int(prog.get("run_time_ns", 0)), count + int(prog.get("run_cnt", 0)))
    return runs


def lt_run_time(prefixes: tuple[str, ...] = (PROGRAM_PREFIX,),
                runs: dict[str, tuple[int, int]] | None = None) -> tuple[int, int]:
    """(run_time_ns, run_cnt) summed over every loaded program whose name starts so,
    in ``runs`` (a :func:`program_runs` snapshot) or in a fresh one."""
    ns = count = 0
    for name, (prog_ns, prog_count) in (program_runs() if runs is None else runs).items():
        if name.startswith(prefixes):
            ns += prog_ns
            count += prog_count
    return ns, count

"""What one uprobe hit costs on this machine before any BPF program runs.

Every uprobe hit is a breakpoint trap into the kernel, the probed
instruction stepped or emulated, and the return to user space; the program
attached to it comes on top.  How much the trap costs depends on the CPU,
its mitigations and the hypervisor, and it bounds what any uprobe-based
tracer can do here.  To measure it alone, a tiny C program calls a function
in a loop, timed untraced and then with a tracefs uprobe event (the
kernel's own, no BPF) enabled on that function; the difference per call is
the trap's cost.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from ._common import c_compiler

#: The loop: ``target`` is called ``argv[1]`` times; the program prints the
#: nanoseconds per call.
SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
__attribute__((noinline)) int target(int x) { __asm__ volatile(""); return x + 1; }
int main(int argc, char **argv) {
    long n = atol(argv[1]), i; int s = 0; struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < n; i++) s = target(s);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.1f %d\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n, s);
    return 0;
}
"""
TRACEFS = Path("/sys/kernel/tracing")
#: The tracefs event's group and name (removed again after the run).
EVENT = "libtrace_bench/uprobe_trap"
#: Calls per timed run: enough for a stable figure at ~10 us per trap.
CALLS = 100_000


def _define(line: str) -> None:
    """Write one definition to tracefs's uprobe_events (os.write: Python's append
    mode seeks to the end first, which tracefs refuses)."""
    fd = os.open(TRACEFS / "uprobe_events", os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, line.encode() + b"\n")
    finally:
        os.close(fd)


def _ns_per_call(exe: str, calls: int) -> float:
    out = subprocess.run([exe, str(calls)], capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


def _function_offset(exe: str) -> int:
    """``target``'s file offset (what a uprobe takes), from its symbol and segment."""
    from elftools.elf.elffile import ELFFile

    with open(exe, "rb") as f:
        elf = ELFFile(f)
        symbol = elf.get_section_by_name(".symtab").get_symbol_by_name("target")[0]  # type: ignore[union-attr]
        address = symbol["st_value"]
        for segment in elf.iter_segments("PT_LOAD"):
            start = segment["p_vaddr"]
            if start <= address < start + segment["p_filesz"]:
                return int(address - start + segment["p_offset"])
    raise RuntimeError("target not found in a loadable segment")


def trap_us(calls: int = CALLS) -> float | None:
    """Microseconds one uprobe hit adds to a call (None where tracefs is missing)."""
    if not (TRACEFS / "uprobe_events").exists():
        return None
    with tempfile.TemporaryDirectory(prefix="libtrace-uprobe-") as tmp:
        source, exe = os.path.join(tmp, "loop.c"), os.path.join(tmp, "loop")
        Path(source).write_text(SOURCE)
        subprocess.run([c_compiler(), "-O2", "-o", exe, source], check=True)
        bare = _ns_per_call(exe, calls * 10)
        _define(f"p:{EVENT} {exe}:{_function_offset(exe):#x}")
        enable = TRACEFS / "events" / EVENT / "enable"
        try:
            enable.write_text("1")
            probed = _ns_per_call(exe, calls)
        finally:
            enable.write_text("0")
            _define(f"-:{EVENT}")
    return round((probed - bare) / 1000, 2)

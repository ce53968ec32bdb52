"""What one uprobe hit costs on this machine before any BPF program runs.

Every uprobe hit is a breakpoint trap into the kernel, the probed
instruction stepped or emulated, and the return to user space; the program
attached to it comes on top.  An instruction the kernel cannot emulate is
copied out of line and single-stepped: a second trap.  On x86 the kernel
emulates conditional jumps (and a few more), so the two kinds cost very
differently; on this project's test machine (a virtual machine) 15-17 us
stepped against 1.1-1.2 us emulated.  To measure each alone, a tiny C
program calls a function in a loop, timed untraced and then with a tracefs
uprobe event (the kernel's own, no BPF) enabled on one of its instructions:
``lea`` (stepped) or the ``js`` after a ``test`` (emulated, the shape of Go's
stack check, where :func:`libtrace.tracer.golang.entry_probe_offset` puts
the entry probes); the difference per call is the trap's cost.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from ._common import c_compiler

#: The loop: ``target`` (or ``jumper``, given a second argument) is called
#: ``argv[1]`` times; the program prints the nanoseconds per call.
SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
__attribute__((noinline)) int target(int x) { __asm__ volatile(""); return x + 1; }
/* test %edi,%edi (2 bytes); js (a conditional jump, never taken here); lea; ret */
__asm__(".text\n.globl jumper\n.type jumper,@function\njumper:\n"
        "test %edi, %edi\njs 1f\n1: lea 1(%rdi), %eax\nret\n.size jumper, .-jumper\n");
int jumper(int x);
int main(int argc, char **argv) {
    long n = atol(argv[1]), i; int s = 0; struct timespec a, b;
    int (*f)(int) = argc > 2 ? jumper : target;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < n; i++) s = f(s);
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


#: Where each kind of probe goes: (function, offset of the instruction in it).
PROBES = {"stepped": ("target", 0), "emulated": ("jumper", 2)}


def _ns_per_call(exe: str, calls: int, function: str = "target") -> float:
    argv = [exe, str(calls)] + (["jumper"] if function == "jumper" else [])
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return float(out.split()[0])


def _function_offset(exe: str, name: str = "target") -> int:
    """A function's file offset (what a uprobe takes), from its symbol and segment."""
    from elftools.elf.elffile import ELFFile

    with open(exe, "rb") as f:
        elf = ELFFile(f)
        symbol = elf.get_section_by_name(".symtab").get_symbol_by_name(name)[0]  # type: ignore[union-attr]
        address = symbol["st_value"]
        for segment in elf.iter_segments("PT_LOAD"):
            start = segment["p_vaddr"]
            if start <= address < start + segment["p_filesz"]:
                return int(address - start + segment["p_offset"])
    raise RuntimeError(f"{name} not found in a loadable segment")


def trap_us(calls: int = CALLS, kind: str = "stepped") -> float | None:
    """Microseconds one uprobe hit on a ``kind`` instruction (a key of
    :data:`PROBES`) adds to a call (None where tracefs is missing)."""
    if not (TRACEFS / "uprobe_events").exists():
        return None
    function, at = PROBES[kind]
    with tempfile.TemporaryDirectory(prefix="libtrace-uprobe-") as tmp:
        source, exe = os.path.join(tmp, "loop.c"), os.path.join(tmp, "loop")
        Path(source).write_text(SOURCE)
        subprocess.run([c_compiler(), "-O2", "-o", exe, source], check=True)
        bare = _ns_per_call(exe, calls * 10, function)
        _define(f"p:{EVENT} {exe}:{_function_offset(exe, function) + at:#x}")
        enable = TRACEFS / "events" / EVENT / "enable"
        try:
            enable.write_text("1")
            probed = _ns_per_call(exe, calls, function)
        finally:
            enable.write_text("0")
            _define(f"-:{EVENT}")
    return round((probed - bare) / 1000, 2)

"""Syscalls already blocked when the tracer attaches, handed to the exit programs.

Each exit program needs the arguments its enter program saved (``inflight``,
keyed by thread).  A thread that was already blocked in ``accept`` or ``read``
when the programs attached has no saved arguments, so its first syscall would
go unseen: a server waiting in ``accept`` has its next connection untracked
without BTF (nothing else says the new fd is a socket), and the first chunk a
blocked reader receives becomes a gap.  ``/proc/PID/task/TID/syscall`` names
the syscall a blocked thread is in and its arguments, so the tracer saves them
for it, exactly as the enter program would have.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .events import RawArgs, Syscall

PROC = Path("/proc")


Saver = Callable[[list[int]], tuple[int, int, int, int]]
#: x86-64 syscall number → (libtrace's syscall, what save_args() is given:
#: fd, buf, addr, count), as the DATA_PROGRAMS/ACCEPT_PROGRAMS enter programs do.
#: Only syscalls that block waiting for a peer: the others end at once.
BLOCKING: dict[int, tuple[Syscall, Saver]] = {
    0: (Syscall.READ, lambda a: (a[0], a[1], 0, 0)),
    19: (Syscall.READV, lambda a: (a[0], a[1], 0, a[2])),
    45: (Syscall.RECVFROM, lambda a: (a[0], a[1], a[4], 0)),
    47: (Syscall.RECVMSG, lambda a: (a[0], a[1], 0, 0)),
    299: (Syscall.RECVMMSG, lambda a: (a[0], a[1], 0, a[2])),
    43: (Syscall.ACCEPT, lambda a: (a[0], 0, a[1], 0)),
    288: (Syscall.ACCEPT4, lambda a: (a[0], 0, a[1], 0)),
}


def _tasks(pids: Iterable[int] | None) -> Iterator[tuple[int, int]]:
    if pids is None:
        pids = (int(entry) for entry in os.listdir(PROC) if entry.isdigit())
    for pid in pids:
        with contextlib.suppress(OSError):
            for tid in os.listdir(PROC / str(pid) / "task"):
                yield pid, int(tid)


def blocked_syscalls(pids: Iterable[int] | None = None) -> Iterator[tuple[int, int, RawArgs]]:
    """(pid, tid, arguments) of every thread blocked in a syscall the programs capture."""
    for pid, tid in _tasks(pids):
        try:
            words = (PROC / str(pid) / "task" / str(tid) / "syscall").read_text().split()
        except OSError:  # gone, or not ours to read
            continue
        if len(words) < 7 or not words[0].isdigit():  # "running", or -1 (not in a syscall)
            continue
        known = BLOCKING.get(int(words[0]))
        if known is None:
            continue
        syscall, saver = known
        fd, buf, addr, count = saver([int(word, 16) for word in words[1:7]])
        args = RawArgs(buf=buf, addr=addr, count=count & 0xFFFFFFFF,
                       fd=ctypes.c_int32(fd & 0xFFFFFFFF).value, syscall=syscall)  # fmt: skip
        yield pid, tid, args

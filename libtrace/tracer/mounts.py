"""Mount tracefs and bpffs when they are missing (idempotent).

libbpf resolves tracepoint ids through tracefs, and a freshly booted guest
or a minimal container often has neither file system mounted.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from pathlib import Path

from ..errors import BpfError, PrivilegeError

TRACEFS = Path("/sys/kernel/tracing")
DEBUGFS_TRACING = Path("/sys/kernel/debug/tracing")
BPFFS = Path("/sys/fs/bpf")


def _mounted_fstypes() -> dict[str, str]:
    """Mount point → file system type, from /proc/self/mounts."""
    table: dict[str, str] = {}
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) >= 3:
                table[fields[1]] = fields[2]
    return table


def _mount(fstype: str, target: Path) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 4 + [ctypes.c_void_p]
    if libc.mount(fstype.encode(), str(target).encode(), fstype.encode(), None, None) != 0:
        err = ctypes.get_errno()
        if err in (errno.EPERM, errno.EACCES):
            raise PrivilegeError(f"mount {fstype} on {target}", err)
        raise BpfError(f"mount {fstype} on {target}", err)


def tracing_dir() -> Path:
    """The tracefs directory that holds ``events/``, mounting tracefs if needed."""
    for candidate in (TRACEFS, DEBUGFS_TRACING):
        if (candidate / "events").is_dir():
            return candidate
    if _mounted_fstypes().get(str(TRACEFS)) != "tracefs":
        _mount("tracefs", TRACEFS)
    return TRACEFS


def ensure_bpffs() -> Path:
    """bpffs on /sys/fs/bpf (for users who pin); mounted if missing."""
    if _mounted_fstypes().get(str(BPFFS)) != "bpf" and os.path.isdir(BPFFS):
        _mount("bpf", BPFFS)
    return BPFFS


#: Where ``child_pid`` sits in ``sched_process_fork``'s record while the comms
#: were char[16] (before they became __data_loc strings).
FORK_CHILD_PID_CLASSIC = 44


def tracepoint_field_offset(event: str, field: str) -> int | None:
    """The offset of ``field`` in tracepoint ``event``'s record (``sched/sched_process_fork``),
    from its ``format`` file; None if either is unknown."""
    try:
        text = (tracing_dir() / "events" / event / "format").read_text()
    except (OSError, BpfError):
        return None
    for line in text.splitlines():
        parts = [part.strip() for part in line.strip().split(";")]
        if parts and parts[0].startswith("field:") and parts[0].split()[-1] == field:
            for part in parts[1:]:
                if part.startswith("offset:"):
                    return int(part.removeprefix("offset:"))
    return None

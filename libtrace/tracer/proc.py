"""Socket identity from /proc, for the variant that runs without kernel BTF.

Without BTF the BPF programs cannot read ``struct sock``; they know a socket
from socket()/accept() and its peer from connect()/accept()/sendto(), but not
its local address.  This module completes that from procfs: the fd's inode
(``/proc/PID/fd/N`` → ``socket:[INODE]``) is looked up in the process's
``/proc/PID/net/{tcp,tcp6,udp,udp6}`` tables.  It also lists the sockets that
existed before the tracer started, so they can be seeded into the kernel's
socket table.  A socket closed before the lookup cannot be completed: that is
the price of running without BTF, and the event keeps what the kernel knew.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_SOCKET_LINK = re.compile(r"socket:\[(\d+)\]")
_TABLES = (
    ("tcp", socket.AF_INET, socket.IPPROTO_TCP),
    ("tcp6", socket.AF_INET6, socket.IPPROTO_TCP),
    ("udp", socket.AF_INET, socket.IPPROTO_UDP),
    ("udp6", socket.AF_INET6, socket.IPPROTO_UDP),
)


@dataclass(frozen=True, slots=True)
class ProcSocket:
    """An inet socket as /proc/net describes it."""

    inode: int
    family: int
    l4: int
    laddr: bytes  #: 16 bytes, IPv4 in the first 4, network order
    lport: int
    raddr: bytes
    rport: int


def _parse_address(text: str, family: int) -> tuple[bytes, int]:
    # /proc/net prints each 32-bit word of the address in host (little
    # endian) order, and the port in hex.
    hexaddr, hexport = text.split(":")
    raw = bytes.fromhex(hexaddr)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return words.ljust(16, b"\0"), int(hexport, 16)


def _read_table(
    pid: int, name: str, family: int, l4: int, inode: int | None = None
) -> Iterator[ProcSocket]:
    """The sockets of one table (``inode``: only that one's, whose line alone is
    parsed: a busy host's tables hold thousands of lines, TIME_WAIT included)."""
    wanted = str(inode) if inode is not None else None
    try:
        with open(f"/proc/{pid}/net/{name}", encoding="ascii") as table:
            next(table, None)  # header
            for line in table:
                fields = line.split()
                if len(fields) < 10 or (wanted is not None and fields[9] != wanted):
                    continue
                laddr, lport = _parse_address(fields[1], family)
                raddr, rport = _parse_address(fields[2], family)
                yield ProcSocket(int(fields[9]), family, l4, laddr, lport, raddr, rport)
    except OSError:
        return


def socket_table(pid: int) -> dict[int, ProcSocket]:
    """Every inet socket in pid's network namespace, by inode."""
    return {
        entry.inode: entry
        for name, family, l4 in _TABLES
        for entry in _read_table(pid, name, family, l4)
    }


def fd_inode(pid: int, fd: int) -> int | None:
    """The socket inode behind pid's fd, or None if it is not a socket."""
    try:
        match = _SOCKET_LINK.fullmatch(os.readlink(f"/proc/{pid}/fd/{fd}"))
    except OSError:
        return None
    return int(match.group(1)) if match else None


def lookup(pid: int, fd: int) -> ProcSocket | None:
    """What /proc says of pid's fd, or None if it is gone or not inet."""
    inode = fd_inode(pid, fd)
    if inode is None:
        return None
    for name, family, l4 in _TABLES:
        for entry in _read_table(pid, name, family, l4, inode):
            return entry
    return None


def socket_fds(pids: Iterable[int] | None = None) -> Iterator[tuple[int, int, ProcSocket]]:
    """(pid, fd, socket) for every open inet socket of the given (or all) pids."""
    if pids is None:
        pids = (int(name) for name in os.listdir("/proc") if name.isdigit())
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        table: dict[int, ProcSocket] | None = None
        for name in fds:
            inode = fd_inode(pid, int(name))
            if inode is None:
                continue
            if table is None:
                table = socket_table(pid)
            if inode in table:
                yield pid, int(name), table[inode]

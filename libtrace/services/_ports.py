"""A service's port is ours: free before the launch, held by our server after it.

A readiness probe only proves that *something* answers on the port.  When
another server already listens there (a user's own redis on the port a check
was told to use), our server fails to bind, the probe finds the other one, and
the traffic would go to a server libtrace did not start.  So the port is
claimed before the launch (a bind that fails names who holds it), and once the
service is ready every TCP listener on the port must belong to the processes
the backend launched.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
from collections.abc import Iterable
from pathlib import Path

from ._errors import ServiceError

PROC = Path("/proc")
#: ``st`` of a listening socket in /proc/net/tcp{,6}.
TCP_LISTEN = "0A"


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET


def claim_port(name: str, host: str, port: int, *, udp: bool = False) -> None:
    """Raise :class:`ServiceError` unless ``host:port`` can be bound now (TCP, and UDP if asked).

    The test binds are closed at once; SO_REUSEADDR keeps a socket in
    TIME_WAIT from a previous run from counting as a holder.
    """
    kinds = [socket.SOCK_STREAM] + ([socket.SOCK_DGRAM] if udp else [])
    for kind in kinds:
        with socket.socket(_family(host), kind) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    message = f"{name}: cannot bind {host}:{port}: {exc.strerror}"
                    raise ServiceError(message) from exc
                proto = "tcp" if kind == socket.SOCK_STREAM else "udp"
                holders = _holders(listener_inodes(host, port))
                raise ServiceError(
                    f"{name}: {host}:{port}/{proto} is already in use{holders}; "
                    "libtrace sends traffic only to a server it started: choose another port"
                ) from None


def _holders(inodes: set[int]) -> str:
    """`` by pid N (comm)`` for the processes holding ``inodes``, or nothing."""
    pids = sorted(pids_holding(inodes))
    if not pids:
        return ""
    return " by " + ", ".join(f"pid {pid} ({_comm(pid)})" for pid in pids[:3])


def _comm(pid: int) -> str:
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return "?"


def _local(address: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """``0100007F:1F90`` (host byte order words, as procfs prints them) → (address, port)."""
    hex_ip, hex_port = address.split(":")
    raw = bytes.fromhex(hex_ip)
    # Each 32-bit word is printed in host (little-endian) order.
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(raw)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, int(hex_port, 16)
    return ip, int(hex_port, 16)


def listener_inodes(host: str, port: int) -> set[int]:
    """Socket inodes of the TCP listeners that take connections to ``host:port``:
    bound to that address or to a wildcard, IPv4 or IPv6."""
    wanted = ipaddress.ip_address(host)
    inodes: set[int] = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (PROC / "net" / table).read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) <= 9 or fields[3] != TCP_LISTEN:
                    continue
                ip, bound_port = _local(fields[1])
                if bound_port == port and (ip == wanted or ip.is_unspecified):
                    inodes.add(int(fields[9]))
    return inodes


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets ``pid`` has open (empty if it is gone)."""
    found: set[int] = set()
    fd_dir = PROC / str(pid) / "fd"
    with contextlib.suppress(OSError):
        for fd in os.listdir(fd_dir):
            with contextlib.suppress(OSError):
                target = os.readlink(fd_dir / fd)
                if target.startswith("socket:["):
                    found.add(int(target[8:-1]))
    return found


def pids_holding(inodes: set[int]) -> set[int]:
    """The processes that have one of ``inodes`` open (a scan of /proc)."""
    if not inodes:
        return set()
    return {
        int(entry) for entry in os.listdir(PROC)
        if entry.isdigit() and socket_inodes(int(entry)) & inodes
    }  # fmt: skip


def check_listeners_are_ours(name: str, host: str, port: int, pids: Iterable[int]) -> None:
    """Raise :class:`ServiceError` if a TCP listener on ``port`` is not held by ``pids``.

    A UDP-only server (no TCP listener at all) passes: its port was claimed
    before the launch.
    """
    listeners = listener_inodes(host, port)
    ours: set[int] = set()
    for pid in pids:
        ours |= socket_inodes(pid)
    foreign = listeners - ours
    if foreign:
        raise ServiceError(
            f"{name}: the server answering on {host}:{port} is not the one libtrace "
            f"started (listener held{_holders(foreign)}); no traffic was sent"
        )

"""A traffic peer for the capture tests: a separate process (the tracer
never traces itself) that moves known bytes through every syscall family.

Usage: socket_peer.py SCENARIO SEED [ARGS...]
It prints one JSON line describing its sockets (pid, fds, tuples), waits for
a line on stdin, moves the bytes, prints a JSON line of what each fd sent and
received, and waits for a last line before closing its sockets (so that /proc
still describes them while the tracer completes no-BTF events).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import random
import select
import socket
import sys
import tempfile
import threading

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
PR_SET_NAME = 15
COMM = b"lt-peer"


class Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class Msghdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(Iovec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class Mmsghdr(ctypes.Structure):
    _fields_ = [("msg_hdr", Msghdr), ("msg_len", ctypes.c_uint)]


class SockaddrIn(ctypes.Structure):
    _fields_ = [
        ("sin_family", ctypes.c_uint16),
        ("sin_port", ctypes.c_uint16),
        ("sin_addr", ctypes.c_uint8 * 4),
        ("sin_zero", ctypes.c_uint8 * 8),
    ]


def sockaddr(host: str, port: int) -> SockaddrIn:
    sa = SockaddrIn(sin_family=socket.AF_INET, sin_port=socket.htons(port))
    sa.sin_addr[:] = socket.inet_aton(host)
    return sa


def sendmmsg(sock: socket.socket, messages: list[bytes], dest: tuple[str, int]) -> int:
    """sendmmsg(2) with one iovec per message, each to dest (no Python API)."""
    n = len(messages)
    bufs = [ctypes.create_string_buffer(m, len(m)) for m in messages]
    iovs = (Iovec * n)(
        *[
            Iovec(ctypes.cast(b, ctypes.c_void_p), len(m))
            for b, m in zip(bufs, messages, strict=True)
        ]
    )
    names = [sockaddr(*dest) for _ in messages]
    vec = (Mmsghdr * n)()
    for i in range(n):
        vec[i].msg_hdr.msg_name = ctypes.cast(ctypes.byref(names[i]), ctypes.c_void_p)
        vec[i].msg_hdr.msg_namelen = ctypes.sizeof(SockaddrIn)
        vec[i].msg_hdr.msg_iov = ctypes.pointer(iovs[i])
        vec[i].msg_hdr.msg_iovlen = 1
    sent = libc.sendmmsg(sock.fileno(), vec, n, 0)
    if sent != n:
        raise OSError(ctypes.get_errno(), "sendmmsg")
    return sent


def recvmmsg(sock: socket.socket, count: int, size: int) -> list[bytes]:
    """recvmmsg(2) of `count` datagrams, each into two iovecs."""
    bufs = [
        (ctypes.create_string_buffer(size // 2), ctypes.create_string_buffer(size - size // 2))
        for _ in range(count)
    ]
    iovs = [
        (Iovec * 2)(
            Iovec(ctypes.cast(a, ctypes.c_void_p), size // 2),
            Iovec(ctypes.cast(b, ctypes.c_void_p), size - size // 2),
        )
        for a, b in bufs
    ]
    names = [SockaddrIn() for _ in range(count)]
    vec = (Mmsghdr * count)()
    for i in range(count):
        vec[i].msg_hdr.msg_name = ctypes.cast(ctypes.byref(names[i]), ctypes.c_void_p)
        vec[i].msg_hdr.msg_namelen = ctypes.sizeof(SockaddrIn)
        vec[i].msg_hdr.msg_iov = ctypes.cast(iovs[i], ctypes.POINTER(Iovec))
        vec[i].msg_hdr.msg_iovlen = 2
    got = libc.recvmmsg(sock.fileno(), vec, count, 0x40, None)  # MSG_WAITFORONE
    if got < 0:
        raise OSError(ctypes.get_errno(), "recvmmsg")
    out = []
    for i in range(got):
        n = vec[i].msg_len
        a, b = bufs[i]
        out.append((a.raw + b.raw)[:n])
    return out


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


class Ledger:
    """What each fd sent and received, in order."""

    def __init__(self) -> None:
        self.sent: dict[int, bytearray] = {}
        self.received: dict[int, bytearray] = {}

    def out(self, fd: int, data: bytes) -> None:
        self.sent.setdefault(fd, bytearray()).extend(data)

    def into(self, fd: int, data: bytes) -> None:
        self.received.setdefault(fd, bytearray()).extend(data)


def describe(sock: socket.socket) -> dict[str, object]:
    laddr, lport = sock.getsockname()[:2]
    try:
        raddr, rport = sock.getpeername()[:2]
    except OSError:
        raddr, rport = "", 0
    l4 = "tcp" if sock.type == socket.SOCK_STREAM else "udp"
    return {
        "fd": sock.fileno(),
        "l4": l4,
        "laddr": laddr,
        "lport": lport,
        "raddr": raddr,
        "rport": rport,
    }


def tcp_pair(family: int = socket.AF_INET) -> tuple[socket.socket, socket.socket, socket.socket]:
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, 0))  # ephemeral: parallel runs never collide
    listener.listen()
    client = socket.create_connection(listener.getsockname()[:2])
    server, _ = listener.accept()
    return listener, client, server


def scenario_all(port: int) -> None:
    """Every syscall family, TCP over IPv4 and IPv6, UDP, plus a file and a pipe."""
    rng = random.Random(port)

    def blob(n: int) -> bytes:
        return rng.randbytes(n)

    listener, client, server = tcp_pair()
    listener6, client6, server6 = tcp_pair(socket.AF_INET6)
    udp_a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp_a.bind(("127.0.0.1", 0))
    udp_addr = udp_a.getsockname()
    udp_b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp_b.bind(("127.0.0.1", 0))
    pipe_r, pipe_w = os.pipe()
    scratch = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the process
    sockets = [client, server, client6, server6, udp_a, udp_b]
    print(
        json.dumps(
            {
                "pid": os.getpid(),
                "sockets": [describe(s) for s in sockets],
                "files": [pipe_r, pipe_w, scratch.fileno()],
            }
        ),
        flush=True,
    )
    sys.stdin.readline()

    ledger = Ledger()
    c, s = client.fileno(), server.fileno()
    # write/read
    data = blob(300)
    os.write(c, data)
    ledger.out(c, data)
    got = b""
    while len(got) < len(data):
        got += os.read(s, len(data) - len(got))
    ledger.into(s, got)
    # sendto/recvfrom (Python's send/recv)
    data = blob(1000)
    server.sendall(data)
    ledger.out(s, data)
    ledger.into(c, recv_exact(client, len(data)))
    # writev/readv with several iovecs
    parts = [blob(10), blob(200), blob(3)]
    os.writev(c, parts)
    ledger.out(c, b"".join(parts))
    bufs = [bytearray(100), bytearray(113)]
    n = os.readv(s, bufs)
    ledger.into(s, (bytes(bufs[0]) + bytes(bufs[1]))[:n])
    # sendmsg/recvmsg with several iovecs
    parts = [blob(7), blob(70), blob(700)]
    server.sendmsg(parts)
    ledger.out(s, b"".join(parts))
    total, want = b"", sum(map(len, parts))
    while len(total) < want:
        bufs = [bytearray(400), bytearray(400)]
        n = client.recvmsg_into(bufs)[0]
        total += (bytes(bufs[0]) + bytes(bufs[1]))[:n]
    ledger.into(c, total)
    # IPv6, from another thread (its own tid)
    tids: list[int] = []

    def v6() -> None:
        tids.append(threading.get_native_id())
        data = blob(64)
        client6.sendall(data)
        ledger.out(client6.fileno(), data)
        ledger.into(server6.fileno(), recv_exact(server6, len(data)))

    worker = threading.Thread(target=v6)
    worker.start()
    worker.join()
    # UDP: sendto/recvfrom, then sendmmsg/recvmmsg
    data = blob(512)
    udp_b.sendto(data, udp_addr)
    ledger.out(udp_b.fileno(), data)
    got, _ = udp_a.recvfrom(2048)
    ledger.into(udp_a.fileno(), got)
    messages = [blob(33), blob(44), blob(55)]
    sendmmsg(udp_b, messages, udp_addr)
    ledger.out(udp_b.fileno(), b"".join(messages))
    received = []
    for _ in range(50):
        if len(received) == len(messages):
            break
        try:
            received += recvmmsg(udp_a, len(messages) - len(received), 128)
        except BlockingIOError:
            # Seen once on a 5.4 guest under TCG: EAGAIN from a blocking socket
            # with MSG_WAITFORONE; wait for the datagrams and ask again.
            select.select([udp_a], [], [], 1.0)
    ledger.into(udp_a.fileno(), b"".join(received))
    # A connection made while traced: connect and accept events.
    late_listener, late_client, late_server = tcp_pair()
    data = blob(20)
    late_client.sendall(data)
    ledger.out(late_client.fileno(), data)
    ledger.into(late_server.fileno(), recv_exact(late_server, len(data)))
    late = [describe(late_client), describe(late_server)]
    sockets += [late_client, late_server, late_listener]
    # Files and pipes: never traced.
    marker = b"NOT-A-SOCKET" * 10
    os.write(pipe_w, marker)
    os.read(pipe_r, len(marker))
    scratch.write(marker)
    scratch.flush()
    scratch.seek(0)
    scratch.read()

    print(
        json.dumps(
            {
                "thread_tid": tids[0],
                "late": late,
                "sent": {str(fd): bytes(v).hex() for fd, v in ledger.sent.items()},
                "received": {str(fd): bytes(v).hex() for fd, v in ledger.received.items()},
            }
        ),
        flush=True,
    )
    sys.stdin.readline()
    for sock in [*sockets, listener, listener6]:
        sock.close()


def scenario_big(port: int) -> None:
    """Single writes larger than the payload cap (sizes from argv[3:])."""
    _listener, client, server = tcp_pair()
    print(
        json.dumps(
            {"pid": os.getpid(), "sockets": [describe(client), describe(server)], "files": []}
        ),
        flush=True,
    )
    sys.stdin.readline()
    ledger = Ledger()
    for size in map(int, sys.argv[3:]):
        data = os.urandom(size)
        client.sendall(data)
        ledger.out(client.fileno(), data)
        ledger.into(server.fileno(), recv_exact(server, size))
    print(
        json.dumps(
            {
                "sent": {str(k): bytes(v).hex() for k, v in ledger.sent.items()},
                "received": {str(k): bytes(v).hex() for k, v in ledger.received.items()},
            }
        ),
        flush=True,
    )
    sys.stdin.readline()


def scenario_flood(port: int) -> None:
    """Many small writes as fast as possible (argv[3] of them)."""
    _listener, client, server = tcp_pair()
    server.setblocking(False)
    print(json.dumps({"pid": os.getpid(), "sockets": [describe(client)], "files": []}), flush=True)
    sys.stdin.readline()
    fd = client.fileno()
    payload = b"x" * 64
    for i in range(int(sys.argv[3])):
        os.write(fd, payload)
        if i % 256 == 0:
            try:
                while server.recv(1 << 16):
                    pass
            except BlockingIOError:
                pass
    print(json.dumps({}), flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    libc.prctl(PR_SET_NAME, COMM, 0, 0, 0)
    {"all": scenario_all, "big": scenario_big, "flood": scenario_flood}[sys.argv[1]](
        int(sys.argv[2])
    )

"""Syscalls a thread was already blocked in when the tracer attached are captured.

The exit programs need the arguments the enter programs saved; a server
already waiting in accept() (every server, when a tracer attaches to a
running system) had none.  Without BTF its next connection then went
untracked (the fake Dubbo server's, on a 4.19 guest); with BTF the first chunk
a blocked reader gets was a gap.  The tracer saves their arguments from
/proc/PID/task/TID/syscall.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from libtrace import Direction, EventType, Tracer
from libtrace.tracer.events import Syscall
from libtrace.tracer.inflight import blocked_syscalls

from ..waiting import wait_for

pytestmark = [pytest.mark.root, pytest.mark.bpf]

SERVER = """
import socket, sys
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
print(listener.getsockname()[1], flush=True)
conn, _ = listener.accept()  # blocked here when the tracer attaches
data = conn.recv(100)        # and here, for the second test
conn.sendall(data.upper())
"""


def _wait_blocked(pid: int, syscall: Syscall) -> None:
    try:
        wait_for(
            lambda: any(args.syscall == syscall for _, _, args in blocked_syscalls([pid])),
            f"pid {pid} blocked in {syscall.name}",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {Path(f'/proc/{pid}/syscall').read_text()}") from None


@pytest.mark.parametrize("compat", [frozenset(), frozenset({"no-btf"})], ids=["native", "no-btf"])
@pytest.mark.parametrize("blocked_in", [Syscall.ACCEPT4, Syscall.RECVFROM], ids=["accept", "recv"])
def test_a_syscall_blocked_before_the_attach_is_captured(
    compat: frozenset[str], blocked_in: Syscall
) -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    try:
        port = int(server.stdout.readline())
        client = None
        if blocked_in is Syscall.RECVFROM:
            client = socket.create_connection(("127.0.0.1", port))
        _wait_blocked(server.pid, blocked_in)
        with Tracer(ports=(port,), force_compat=compat, go_tls=False) as tracer:
            if client is None:
                client = socket.create_connection(("127.0.0.1", port))
            with client:
                client.sendall(b"hello")
                assert client.recv(100) == b"HELLO"
            server.wait(timeout=30)
            tracer.stop()
            events = list(tracer.events())
    finally:
        server.kill()
        server.wait()
    mine = [e for e in events if e.pid == server.pid]
    data = {(e.direction, e.offset, e.data) for e in mine if e.type is EventType.DATA}
    assert data == {(Direction.INGRESS, 0, b"hello"), (Direction.EGRESS, 0, b"HELLO")}
    if blocked_in is Syscall.ACCEPT4:
        assert [e.type for e in mine if e.type is EventType.ACCEPT] == [EventType.ACCEPT]

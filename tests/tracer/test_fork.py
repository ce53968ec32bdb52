"""Without BTF, a forked child's socket is its parent's: it is traced too.

A server that forks a handler per connection (dnsmasq over TCP) accepts, forks
and closes its own copy at once; the child then reads and writes a socket
the no-BTF path has never seen under the child's pid.  It must inherit the
parent's entry (kept a while after the parent's close).
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from libtrace import Direction, EventType, Tracer

pytestmark = [pytest.mark.root, pytest.mark.bpf]

FORKING_SERVER = """
import os, socket, sys
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
print(listener.getsockname()[1], flush=True)
sys.stdin.readline()  # the tracer is attached
conn, _ = listener.accept()
child = os.fork()
if child == 0:
    data = conn.recv(100)
    conn.sendall(data.upper())
    os._exit(0)
conn.close()  # the parent's copy goes at once, as dnsmasq's does
print(child, flush=True)
os.waitpid(child, 0)
"""


@pytest.mark.parametrize("compat", [frozenset({"no-btf"}),
                                    frozenset({"perfbuf", "probe-read", "no-btf"})],
                         ids=["no-btf", "oldest"])  # fmt: skip
def test_a_forked_handler_is_traced_under_its_own_pid(compat: frozenset[str]) -> None:
    server = subprocess.Popen([sys.executable, "-c", FORKING_SERVER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert server.stdout is not None and server.stdin is not None
    try:
        port = int(server.stdout.readline())
        with Tracer(ports=(port,), force_compat=compat, go_tls=False) as tracer:
            server.stdin.write("go\n")
            server.stdin.flush()
            with socket.create_connection(("127.0.0.1", port)) as client:
                child = int(server.stdout.readline())
                client.sendall(b"hello")
                assert client.recv(100) == b"HELLO"
            server.wait(timeout=30)
            tracer.stop()
            events = [e for e in tracer.events() if e.type is EventType.DATA]
    finally:
        server.kill()
        server.wait()
    by_child = {(e.direction, e.data) for e in events if e.pid == child}
    assert by_child == {(Direction.INGRESS, b"hello"), (Direction.EGRESS, b"HELLO")}
    assert {e.lport for e in events if e.pid == child} == {port}

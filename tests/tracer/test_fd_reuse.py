"""A number that was a file and becomes a socket is traced as a socket.

With BTF, a data syscall's enter program remembers the fds it found not to be
sockets, so that reads and writes of files cost almost nothing.  That memory
must never outlive the file: every way an fd number is freed and taken by a
socket is tried here (close, dup2 over the file, close_range, exec closing a
close-on-exec file, and a number read while free), each after the file was
read so the kernel remembered it, and the socket's bytes must be captured.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading

import pytest

from libtrace import Direction, EventType, Tracer

from ._spy import calls_of

pytestmark = [pytest.mark.root, pytest.mark.bpf]

#: The process under trace: each step reads a file at some fd number (the
#: kernel then remembers "not a socket"), frees the number, puts a connected
#: socket there and sends a marker on it.  It prints {step: fd} as it goes.
REUSER = r"""
import json, os, socket, sys

port = int(sys.argv[1])
steps = {}
keep = []

def connected():
    # Connected first, at a number of its own: the copy that takes the freed
    # number is made by dup(), which no program sees (connect would tell the
    # kernel side it is a socket whatever it remembered).
    keep.append(socket.create_connection(("127.0.0.1", port)))
    return keep[-1]

def read_file():
    fd = os.open("/dev/zero", os.O_RDONLY)
    for _ in range(3):
        os.read(fd, 16)
    return fd

def send(step, sock, fd):
    assert sock.fileno() == fd, (step, sock.fileno(), fd)
    keep.append(sock)
    sock.sendall(f"after-{step}".encode())
    steps[step] = fd

sys.stdin.readline()  # the tracer is attached

origin = connected()
fd = read_file()
os.close(fd)
send("close", socket.socket(fileno=os.dup(origin.fileno())), fd)

fd = read_file()
os.dup2(connected().fileno(), fd)
send("dup2", socket.socket(fileno=fd), fd)

origin = connected()
fd = read_file()
os.closerange(fd, fd + 1)  # close_range(2) where the kernel has it
send("closerange", socket.socket(fileno=os.dup(origin.fileno())), fd)

origin = connected()
free = max(s.fileno() for s in keep) + 1
try:
    os.read(free, 16)
except OSError:
    pass
send("ebadf", socket.socket(fileno=os.dup(origin.fileno())), free)

origin = connected()
for s in keep:  # they keep their numbers across the exec
    os.set_inheritable(s.fileno(), True)
fd = read_file()  # not inheritable: exec closes it, the lowest free number then
print(json.dumps(steps), flush=True)
os.execv(sys.executable, [sys.executable, "-c", AFTER_EXEC, str(origin.fileno()), str(fd)])
"""

AFTER_EXEC = r"""
import json, os, socket, sys

sock = socket.socket(fileno=os.dup(int(sys.argv[1])))
sock.sendall(b"after-exec")
print(json.dumps({"exec": sock.fileno(), "expected": int(sys.argv[2])}), flush=True)
"""


def _sink() -> tuple[socket.socket, threading.Thread]:
    """A listener that reads every connection to its end (the tracer never traces
    its own process, so only the reuser's ends are seen)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=lambda c=conn: [None for _ in iter(lambda: c.recv(4096), b"")],
                             daemon=True).start()  # fmt: skip

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread


@pytest.mark.parametrize("compat", [frozenset(), frozenset({"perfbuf", "probe-read"})],
                         ids=["newest", "btf-oldest-buffers"])  # fmt: skip
def test_a_file_number_taken_by_a_socket_is_traced(compat: frozenset[str]) -> None:
    listener, _ = _sink()
    port = listener.getsockname()[1]
    script = "AFTER_EXEC = " + repr(AFTER_EXEC) + "\n" + REUSER
    proc = subprocess.Popen([sys.executable, "-c", script, str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        with Tracer(pids=(proc.pid,), force_compat=compat, go_tls=False) as tracer:
            assert tracer.variant is not None and tracer.variant.btf
            proc.stdin.write("go\n")
            proc.stdin.flush()
            steps = json.loads(proc.stdout.readline())
            after_exec = json.loads(proc.stdout.readline())
            assert proc.wait(timeout=30) == 0
            tracer.stop()
            sent: dict[int, bytes] = {}
            for event in tracer.events():
                if event.type is EventType.DATA and event.direction is Direction.EGRESS:
                    sent[event.fd] = sent.get(event.fd, b"") + event.data
    finally:
        proc.kill()
        listener.close()
    assert after_exec["exec"] == after_exec["expected"]
    steps["exec"] = after_exec["exec"]
    missing = {step: fd for step, fd in steps.items()
               if f"after-{step}".encode() not in sent.get(fd, b"")}  # fmt: skip
    assert missing == {}, f"markers not captured on their fds: {missing}; captured: {sent}"


def test_the_programs_that_forget_an_fd_attach_before_those_that_remember(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file read and closed while the tracer attaches must not leave its number
    marked for the socket that takes it next: the close (and dup2, close_range,
    exec, fork) programs are attached before any data program.  (The race itself,
    seen with redis-server's /proc reads, is too narrow to provoke here; the real
    attaches are recorded in the order they happen.)"""
    from libtrace.tracer.tracer import FORGETTING_PROGRAMS

    order = calls_of(monkeypatch, "attach")
    with Tracer(go_tls=False):
        pass
    forgetting = [i for i, name in enumerate(order) if name in FORGETTING_PROGRAMS]
    others = [i for i, name in enumerate(order) if name not in FORGETTING_PROGRAMS]
    assert {"lt_enter_close", "lt_exit_close"} <= {order[i] for i in forgetting}, order
    assert others and max(forgetting) < min(others), order

"""Every drop in the kernel is counted: more threads blocked in socket reads than
the ``inflight`` map has entries leaves the extra calls unseen, and the count of
them is exact (data events delivered + ``inflight_full`` = the calls made)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from libtrace import Direction, EventType, Tracer, TracerConfig

from ..waiting import wait_for

pytestmark = [pytest.mark.root, pytest.mark.bpf]

#: Reader threads, and the entries of the inflight map (fewer).
THREADS, ENTRIES = 24, 8
#: recvfrom on x86-64 (Python's socket.recv)
SYS_RECVFROM = 45

CHILD = f"""
import socket, sys, threading
pairs = []
with socket.socket() as listener:
    listener.bind(("127.0.0.1", 0)); listener.listen()
    for _ in range({THREADS}):
        client = socket.create_connection(listener.getsockname())
        pairs.append((client, listener.accept()[0]))
print("ready", flush=True)
sys.stdin.readline()  # the tracer is attached
threads = [threading.Thread(target=server.recv, args=(64,)) for _, server in pairs]
for thread in threads:
    thread.start()
sys.stdin.readline()  # every reader is blocked
for client, _ in pairs:
    client.send(b"x" * 16)
for thread in threads:
    thread.join()
"""


def blocked_in_recv(pid: int) -> int:
    count = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            count += (task / "syscall").read_text().split()[0] == str(SYS_RECVFROM)
        except (OSError, IndexError):
            continue
    return count


def test_more_blocked_readers_than_inflight_entries_are_counted_exactly() -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "ready"
        # enter-args: on 5.15+ data syscalls have exit programs only (no inflight at all).
        config = TracerConfig(pids=(child.pid,), inflight_entries=ENTRIES, go_tls=False,
                              force_compat=frozenset({"enter-args"}))  # fmt: skip
        with Tracer(config) as tracer:
            child.stdin.write("\n")
            child.stdin.flush()
            wait_for(lambda: blocked_in_recv(child.pid) == THREADS, "the readers blocked", 30)
            child.stdin.write("\n")
            child.stdin.flush()
            assert child.wait(timeout=30) == 0
            events = list(tracer.events(duration=0))
            stats = tracer.stats()
    finally:
        if child.poll() is None:
            child.kill()
    data = [e for e in events if e.type is EventType.DATA]
    reads = [e for e in data if e.direction is Direction.INGRESS]
    # Eight readers hold the eight entries: the sixteen other reads are unseen and
    # counted.  The main thread's sends find the map full until the first woken
    # readers leave it (how many is the scheduler's), so every call is either
    # delivered or counted: 24 reads and 24 sends in all, exactly.
    assert len(reads) == ENTRIES and all(e.data == b"x" * 16 for e in reads)
    assert stats.inflight_full >= THREADS - ENTRIES, stats
    assert len(data) + stats.inflight_full == 2 * THREADS, (len(data), stats)
    assert stats.lost == 0 and stats.conns_full == 0

"""Helpers for tests that trace real traffic from a peer process (tests/peers/)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from libtrace import Direction, SocketEvent, StreamReassembler, Tracer

PEER = Path(__file__).parent / "peers" / "socket_peer.py"
#: Polls without a new event before a capture counts as complete.
QUIET_POLLS = 3


class Peer:
    """A socket_peer.py process, stepped through its phases over stdin."""

    def __init__(self, scenario: str, port: int, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), scenario, str(port), *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.layout: dict[str, Any] = self._line()
        self.result: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        return int(self.layout["pid"])

    def _line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"peer exited early with {self.proc.wait()}")
        return json.loads(line)

    def _send(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def run(self) -> dict[str, Any]:
        """Let the peer move its bytes; return its ledger."""
        self._send()
        self.result = self._line()
        return self.result

    def finish(self) -> None:
        if self.proc.poll() is None:
            self._send()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait_until_tracing(stderr: IO[str]) -> str:
    """Read ``libtrace trace``'s stderr up to its "tracing" line (the programs are
    attached); what came before it (a first run compiling the BPF objects) is
    returned with it.  Fails if the trace ends first.

    It reads the pipe itself, a byte at a time, not through ``stderr``: the file
    object reads ahead, and what it buffered past the line is lost to a later
    ``Popen.communicate()``, which reads the pipe's fd (the Go TLS summary line,
    printed right after "tracing", went missing so, now and then)."""
    seen = b""
    while not (b"libtrace: tracing" in seen and seen.endswith(b"\n")):
        byte = os.read(stderr.fileno(), 1)
        rest = stderr.read() if not byte else ""
        assert byte, "libtrace trace ended before tracing: " + seen.decode() + rest
        seen += byte
    return seen.decode()


def drain(tracer: Tracer, timeout: float = 10.0) -> list[SocketEvent]:
    """Poll until the buffer stays quiet for a few polls."""
    events: list[SocketEvent] = []
    quiet, deadline = 0, time.monotonic() + timeout
    while quiet < QUIET_POLLS and time.monotonic() < deadline:
        batch = tracer.poll(50)
        events.extend(batch)
        quiet = 0 if batch else quiet + 1
    return events


def streams(events: list[SocketEvent]) -> dict[tuple[int, int, Direction], bytes]:
    """Reassembled bytes per (pid, fd, direction); asserts there is no gap."""
    reassembler = StreamReassembler()
    out: dict[tuple[int, int, Direction], bytearray] = {}
    chunks = [c for e in events if e.type.name == "DATA" for c in reassembler.feed(e)]
    chunks += list(reassembler.flush())
    last: dict[tuple[int, int, Direction], SocketEvent | None] = {}
    for chunk in chunks:
        why = ""
        previous = last.get(chunk.key)
        if chunk.gap:
            why = "no event carried them (lost, or skipped by the kernel)"
            if previous is not None and previous.captured < previous.size:
                why = (f"the chunk before holds {previous.captured} of its {previous.size} "
                       "bytes (the copy failed or was capped)")
        assert chunk.gap == 0, (
            f"gap of {chunk.gap} bytes before offset {chunk.offset} in {chunk.key}: {why}"
        )
        last[chunk.key] = chunk.event
        out.setdefault(chunk.key, bytearray()).extend(chunk.data)
    return {key: bytes(value) for key, value in out.items()}


def running_kernel() -> tuple[int, int]:
    """(major, minor) of the kernel the tests run on (a guest's, in the matrix)."""
    from libtrace.matrix.prediction import parse_version

    return parse_version(os.uname().release)


@contextlib.contextmanager
def tracing_cli(argv: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """A ``libtrace trace`` child, yielded once it is tracing; killed on the way out
    if the block did not stop it (a failure: leave no tracer behind)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip
    try:
        assert proc.stderr is not None
        wait_until_tracing(proc.stderr)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

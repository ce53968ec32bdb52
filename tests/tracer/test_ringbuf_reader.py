"""The ring buffer read from its mapping while a producer keeps writing.

A child sends 150 000 small chunks on loopback in bursts while the tracer
drains.  The reader stays a few dozen KiB behind in an 8 MiB ring, so the
ring is never full and nothing may be lost: a loss here means the reader
made the ring look full.  (It did, when the consumer position was stored
byte by byte: a producer that read it half-written saw a far older position
and dropped a few events per 100 000.)
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable

import pytest

from libtrace import Direction, EventType, SocketEvent, Tracer
from libtrace.tracer import events, perfbuf, ringbuf
from libtrace.tracer.tracer import TracerConfig, TracerStats

pytestmark = [pytest.mark.root, pytest.mark.bpf]

SENDS = 150_000


def _sender(start_fd: int) -> None:
    """In the child: wait for the go, then send in bursts of 16, draining the peer."""
    os.read(start_fd, 1)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    server.setblocking(False)
    for i in range(SENDS):
        client.send(b"x" * 64)
        if i % 16 == 15:
            try:
                while server.recv(65536):
                    pass
            except BlockingIOError:
                pass
            # Part of the scenario, not a wait for anything: bursts spaced in time, so
            # the producer keeps writing beside the reader all along the test.
            time.sleep(0.0002)


def _is_send(event: SocketEvent) -> bool:
    return event.type is EventType.DATA and event.direction is Direction.EGRESS


def _traced_sends(
    compat: frozenset[str], reader: type, check: Callable[[object], None] = lambda _b: None
) -> tuple[int, TracerStats]:
    """Run the sender in a child under a tracer of that variant, draining as it
    goes: (its sends delivered, the final stats).  Skips unless the tracer reads
    its buffer with ``reader``; ``check`` looks at that reader first."""
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            _sender(go_read)
        finally:
            os._exit(0)
    try:
        with Tracer(TracerConfig(pids=(pid,), force_compat=compat)) as tracer:
            if not isinstance(tracer._buffer, reader):
                pytest.skip(f"this kernel or libbpf gives no {reader.__name__}")
            check(tracer._buffer)
            os.write(go_write, b"g")
            sends = 0
            while not os.waitpid(pid, os.WNOHANG)[0]:
                sends += sum(_is_send(e) for e in tracer.poll(10))
            sends += sum(_is_send(e) for e in tracer.drain())
            return sends, tracer.stats()
    finally:
        if not _reaped(pid):  # a skip or a failure left it waiting or sending
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(go_read)
        os.close(go_write)


def _reaped(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True


@pytest.mark.parametrize("decoder", ["compiled", "python"])
def test_a_concurrent_producer_loses_nothing(decoder: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if decoder == "python":
        # The walk and the decoding in Python, as where nothing could be compiled.
        monkeypatch.setattr(ringbuf, "native_decoder", lambda: None)
        monkeypatch.setattr(events, "native_decoder", lambda: None)
    elif events.native_decoder() is None:
        pytest.skip("no C compiler or Python headers for the compiled decoder")
    if not ringbuf.usable():
        pytest.skip("the mapped reader is used on x86-64 only")

    def check(buffer: object) -> None:
        assert isinstance(buffer, ringbuf.MappedRingBuffer)
        assert (buffer._on_events is not None) == (decoder == "compiled")

    sends, stats = _traced_sends(frozenset(), ringbuf.MappedRingBuffer, check)
    assert stats.lost == 0, stats
    assert sends == SENDS


def test_the_perf_buffer_read_in_compiled_code_accounts_for_every_send() -> None:
    """The old kernels' buffer: rings walked by _ringdecode.consume_perf (records
    that wrap around a ring's end included), each send delivered or counted lost."""
    if events.native_decoder() is None:
        pytest.skip("no C compiler or Python headers for the compiled decoder")
    sends, stats = _traced_sends(frozenset({"perfbuf"}), perfbuf.DecodingPerfBuffer)
    assert sends + stats.lost == SENDS, stats
    assert stats.decode_errors == 0

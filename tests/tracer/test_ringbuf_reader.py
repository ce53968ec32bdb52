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
import socket
import time

import pytest

from libtrace import Direction, EventType, SocketEvent, Tracer
from libtrace.tracer import events, ringbuf
from libtrace.tracer.tracer import TracerConfig

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
            time.sleep(0.0002)


def _is_send(event: SocketEvent) -> bool:
    return event.type is EventType.DATA and event.direction is Direction.EGRESS


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
    go_read, go_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            _sender(go_read)
        finally:
            os._exit(0)
    try:
        with Tracer(TracerConfig(pids=(pid,))) as tracer:
            if not isinstance(tracer._buffer, ringbuf.MappedRingBuffer):
                pytest.skip("this kernel has no BPF ring buffer")
            assert (tracer._buffer._on_events is not None) == (decoder == "compiled")
            os.write(go_write, b"g")
            sends = 0
            while not os.waitpid(pid, os.WNOHANG)[0]:
                sends += sum(_is_send(e) for e in tracer.poll(10))
            sends += sum(_is_send(e) for e in tracer.drain())
            stats = tracer.stats()
    finally:
        os.close(go_read)
        os.close(go_write)
    assert stats.lost == 0, stats
    assert sends == SENDS

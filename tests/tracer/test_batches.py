"""Data events gathered per CPU into batches, on real sockets of a child process.

Where the data syscalls' exits read their own arguments (5.15+) and the ring
buffer carries the events, the exits put small events into their CPU's batch
and output a batch as one ring record; the tracer flushes the batches before
each read and after it detaches (libtrace/tracer/batches.py).  None of that
may leave an event waiting for more traffic, lose it, or put it out of order.
On a kernel without batches the same traffic must come through alike.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from libtrace import Direction, EventType, SocketEvent, Tracer
from libtrace.tracer import events
from libtrace.tracer.events import RawEvent
from libtrace.tracer.probe import probe_features

from ..tracing import drain

pytestmark = [pytest.mark.root, pytest.mark.bpf]

MESSAGE = b"0123456789abcdef"


def _batches_expected(compat: frozenset[str] = frozenset()) -> bool:
    features = probe_features()
    return features.task_pt_regs and features.ringbuf and not compat & {"no-batch", "perfbuf"}


#: The command byte for one sendmsg of a small chunk, then one too large for a batch.
SMALL_THEN_LARGE = 255
LARGE = b"L" * 2000


def _sender(commands: int, replies: int) -> None:
    """In the child: per command byte N, send N messages on a loopback connection
    (or, for SMALL_THEN_LARGE, one call of two chunks)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    while count := os.read(commands, 1):
        if count[0] == SMALL_THEN_LARGE:
            client.sendmsg([MESSAGE, LARGE])
            server.recv(len(MESSAGE) + len(LARGE), socket.MSG_WAITALL)
        for _ in range(count[0] % SMALL_THEN_LARGE):
            client.send(MESSAGE)
            server.recv(len(MESSAGE))  # one message at a time: one event per send
        os.write(replies, b"k")


@contextmanager
def _child() -> Iterator[tuple[int, int, int]]:
    """A forked sender: (pid, command fd, reply fd)."""
    commands, to_child = os.pipe()
    from_child, replies = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(to_child)  # else the parent's close would never end the child's reads
            os.close(from_child)
            _sender(commands, replies)
        finally:
            os._exit(0)
    try:
        yield pid, to_child, from_child
    finally:
        os.close(to_child)
        os.waitpid(pid, 0)
        for fd in (commands, from_child, replies):
            os.close(fd)


def _send(child: tuple[int, int, int], count: int) -> None:
    _, to_child, from_child = child
    os.write(to_child, bytes([count]))
    assert os.read(from_child, 1) == b"k"


def _sends(batch: list[SocketEvent], pid: int) -> list[SocketEvent]:
    return [e for e in batch if e.pid == pid and e.type is EventType.DATA
            and e.direction is Direction.EGRESS]  # fmt: skip


def _pending(tracer: Tracer) -> int:
    """Events waiting in the CPUs' batches."""
    assert tracer._flush is not None
    return tracer._flush.pending()


@pytest.mark.parametrize(
    "compat", [frozenset(), frozenset({"no-batch"})], ids=["default", "no-batch"]
)
def test_what_a_quiet_socket_sent_comes_with_the_next_read(compat: frozenset[str]) -> None:
    with _child() as child, Tracer(pids=(child[0],), force_compat=compat) as tracer:
        assert tracer.batching == _batches_expected(compat)
        _send(child, 5)
        if tracer.batching:
            assert _pending(tracer) == 10  # 5 sends, 5 receives: gathered, not in the ring yet
        # No more traffic, no wakeup: the flush before each read brings them (once
        # the time order's margin has passed).
        sends = _sends(drain(tracer), child[0])
        assert [(e.data, e.offset) for e in sends] == [
            (MESSAGE, i * len(MESSAGE)) for i in range(5)
        ]
        if tracer.batching:
            assert _pending(tracer) == 0
        stats = tracer.stats()
        assert stats.lost == 0


def test_a_stop_delivers_what_waited_in_the_batches() -> None:
    with _child() as child, Tracer(pids=(child[0],)) as tracer:
        _send(child, 200)  # more than one batch holds: some output, the rest waiting
        if tracer.batching:
            assert 0 < _pending(tracer) < 400  # of 200 sends and 200 receives
        sends = _sends(tracer.drain(), child[0])
        stats = tracer.stats()
    assert [e.offset for e in sends] == [i * len(MESSAGE) for i in range(200)]
    assert stats.lost == 0
    assert stats.kernel_events == stats.events + stats.dropped + stats.process_events


def test_the_chunks_of_one_call_keep_their_order() -> None:
    """A call's chunks share one timestamp, so the time order keeps them in
    arrival order: a large chunk output alone must not pass the small one
    before it that waits in the batch."""
    with _child() as child, Tracer(pids=(child[0],)) as tracer:
        _send(child, SMALL_THEN_LARGE)
        sends = _sends(drain(tracer), child[0])
    assert [(e.data, e.offset) for e in sends] == [(MESSAGE, 0), (LARGE, len(MESSAGE))]
    assert sends[0].ts_ns == sends[1].ts_ns


def test_a_small_ring_gets_batches_it_can_hold() -> None:
    """A batch is output whole: in a one-page ring it must be smaller than the
    ring (else every batch would be lost), and the events still come through."""
    page = os.sysconf("SC_PAGE_SIZE")
    with _child() as child, Tracer(pids=(child[0],), buffer_bytes=page) as tracer:
        for _ in range(5):
            _send(child, 3)
            assert len(_sends(drain(tracer), child[0])) == 3
        stats = tracer.stats()
    assert stats.lost == 0


def _raw(captured: bytes, offset: int) -> bytes:
    raw = RawEvent(type=EventType.DATA, pid=7, tid=7, fd=3, size=len(captured),
                   captured=len(captured), offset=offset)  # fmt: skip
    return bytes(raw) + captured


def _batch_record(payloads: list[bytes]) -> bytes:
    """Events back to back, each padded to 8 bytes, as lt_batch holds them."""
    out, offset = b"", 0
    for payload in payloads:
        event = _raw(payload, offset)
        out += event + bytes(-len(event) % 8)
        offset += len(payload)
    return out


@pytest.mark.parametrize("pure", [False, True], ids=["compiled", "python"])
def test_a_batch_record_decodes_into_its_events(monkeypatch, pure: bool) -> None:
    if pure:
        monkeypatch.setattr(events, "native_decoder", lambda: None)
    payloads = [b"a", b"", b"x" * 13, b"y" * 8]
    decoded = events.decode_batch(_batch_record(payloads))
    assert [(e.data, e.offset) for e in decoded] == [(p, sum(map(len, payloads[:i])))
                                                     for i, p in enumerate(payloads)]  # fmt: skip
    # One event alone, unpadded (a record output alone): the same as decode().
    assert events.decode_batch(_raw(b"abc", 5)) == [events.decode(_raw(b"abc", 5))]
    # An event whose payload runs past the record: the batch cannot be read on.
    cut = _batch_record([b"ok"]) + _raw(b"z" * 100, 2)[: events.HEADER_SIZE + 10]
    with pytest.raises(events.DecodeError, match="payload needs"):
        events.decode_batch(cut)

"""Stream reassembly by kernel offsets: order restored, holes reported, never glued."""

from __future__ import annotations

from libtrace import Direction, EventFlag, EventType, SocketEvent, StreamReassembler, Syscall

STREAM = b"".join(bytes([i]) * 10 for i in range(10))  # 100 bytes, 10 distinct chunks


def chunk(offset: int, size: int = 10, cap: int | None = None, fd: int = 3) -> SocketEvent:
    data = STREAM[offset : offset + size][: cap if cap is not None else size]
    return SocketEvent(
        type=EventType.DATA,
        pid=1,
        tid=1,
        comm="t",
        fd=fd,
        direction=Direction.INGRESS,
        syscall=Syscall.READ,
        l4="tcp",
        family="ipv4",
        laddr="127.0.0.1",
        lport=1,
        raddr="127.0.0.1",
        rport=2,
        ts_ns=offset,
        offset=offset,
        size=size,
        cgroup_id=0,
        flags=EventFlag(0),
        data=data,
    )


def run(events, reassembler=None):
    reassembler = reassembler or StreamReassembler()
    out = [c for e in events for c in reassembler.feed(e)]
    return out + list(reassembler.flush())


def test_in_order_chunks_come_out_as_they_go_in():
    out = run([chunk(o) for o in range(0, 100, 10)])
    assert b"".join(c.data for c in out) == STREAM
    assert all(c.gap == 0 for c in out)


def test_a_chunk_that_overtakes_the_first_waits_for_it():
    # The perf buffer is read CPU by CPU: offset 10 may arrive before offset 0.
    reassembler = StreamReassembler()
    assert list(reassembler.feed(chunk(10))) == []
    released = list(reassembler.feed(chunk(0)))
    assert [c.offset for c in released] == [0, 10]
    assert b"".join(c.data for c in released) == STREAM[:20]


def test_reordered_chunks_are_put_back_in_order():
    order = [30, 0, 20, 10, 50, 40, 60, 90, 70, 80]
    out = run([chunk(o) for o in order])
    assert b"".join(c.data for c in out) == STREAM and all(c.gap == 0 for c in out)


def test_a_lost_chunk_is_a_gap_of_its_size_not_glued_data():
    out = run([chunk(o) for o in range(0, 100, 10) if o != 40])
    assert [c.gap for c in out if c.gap] == [10]
    assert next(c for c in out if c.gap).offset == 50


def test_a_lost_first_chunk_is_a_gap_at_the_start():
    out = run([chunk(10), chunk(20)])
    assert (out[0].offset, out[0].gap) == (10, 10)


def test_a_chunk_cut_by_the_cap_leaves_a_gap_after_its_bytes_reported_at_once():
    out = run([chunk(0, size=30, cap=4), chunk(30)])
    assert out[0].data == STREAM[:4]
    assert [(c.offset, c.gap, c.data) for c in out[1:]] == [(30, 26, b""), (30, 0, STREAM[30:40])]
    # the hole is reported with the cut chunk, not only when a next one comes
    reassembler = StreamReassembler()
    assert [(c.offset, c.gap) for c in reassembler.feed(chunk(0, size=30, cap=4))] == [
        (0, 0), (30, 26)]


def test_duplicates_are_dropped():
    out = run([chunk(0), chunk(0), chunk(10)])
    assert [c.offset for c in out] == [0, 10]


def test_too_many_early_chunks_declare_the_hole():
    reassembler = StreamReassembler(max_pending=2)
    out = [c for o in (10, 20, 30) for c in reassembler.feed(chunk(o))]
    assert out and out[0].gap == 10  # offset 0 never came


def test_streams_of_different_sockets_are_separate_and_close_flushes():
    reassembler = StreamReassembler()
    assert [c.offset for c in reassembler.feed(chunk(0, fd=4))] == [0]
    assert list(reassembler.feed(chunk(20, fd=3))) == []
    closed = list(reassembler.close(1, 3))
    assert [(c.offset, c.gap) for c in closed] == [(20, 20)]

"""StreamReassembler: bytes in stream order by socket offset, every hole a gap (sans-IO)."""

from __future__ import annotations

from libtrace import Direction, EventType, SocketEvent
from libtrace.flows import StreamChunk, StreamReassembler

from ..records._events import Socket


def data(sock: Socket, payload: bytes, offset: int, size: int | None = None) -> SocketEvent:
    return sock.event(EventType.DATA, Direction.EGRESS, payload, offset=offset, size=size)


def summary(chunks: list[StreamChunk]) -> list[tuple[int, bytes, int]]:
    return [(chunk.offset, chunk.data, chunk.gap) for chunk in chunks]


def test_an_early_chunk_waits_for_the_one_before_it() -> None:
    sock, reassembler = Socket(10, 3), StreamReassembler()

    assert list(reassembler.feed(data(sock, b"world", 5))) == []
    released = list(reassembler.feed(data(sock, b"hello", 0)))

    assert summary(released) == [(0, b"hello", 0), (5, b"world", 0)]
    assert released[0].ts_ns == released[0].event.ts_ns > 0  # type: ignore[union-attr]


def test_a_duplicate_or_late_chunk_is_dropped() -> None:
    sock, reassembler = Socket(10, 3), StreamReassembler()
    list(reassembler.feed(data(sock, b"hello", 0)))

    assert list(reassembler.feed(data(sock, b"hello", 0))) == []
    assert list(reassembler.feed(data(sock, b"el", 1))) == []


def test_too_many_chunks_behind_a_hole_declare_it_a_gap() -> None:
    sock, reassembler = Socket(10, 3), StreamReassembler(max_pending=2)

    assert list(reassembler.feed(data(sock, b"bb", 10))) == []
    assert list(reassembler.feed(data(sock, b"cc", 12))) == []
    released = list(reassembler.feed(data(sock, b"dd", 14)))

    # The hole (bytes 0-9) is given up at once, and what was in order behind it follows.
    assert summary(released) == [(10, b"bb", 10), (12, b"cc", 0), (14, b"dd", 0)]


def test_flush_releases_every_stream_with_its_holes() -> None:
    one, two = Socket(10, 3), Socket(10, 4)
    reassembler = StreamReassembler()
    list(reassembler.feed(data(one, b"later", 100)))
    list(reassembler.feed(data(two, b"x", 0)))
    list(reassembler.feed(data(two, b"z", 2)))

    released = list(reassembler.flush())

    assert sorted((c.key[1], c.offset, c.data, c.gap) for c in released) == [
        (3, 100, b"later", 100), (4, 2, b"z", 1),
    ]
    assert list(reassembler.flush()) == []  # nothing is held any more


def test_a_capped_chunk_reports_its_cut_at_once() -> None:
    sock, reassembler = Socket(10, 3), StreamReassembler()

    released = list(reassembler.feed(data(sock, b"abc", 0, size=10)))

    assert summary(released) == [(0, b"abc", 0), (10, b"", 7)]
    assert summary(list(reassembler.feed(data(sock, b"next", 10)))) == [(10, b"next", 0)]


def test_a_chunk_without_an_event_has_no_time() -> None:
    assert StreamChunk((1, 2, Direction.EGRESS), 0, b"").ts_ns == 0


def test_held_counts_the_bytes_waiting_and_release_gives_them_up() -> None:
    sock, reassembler = Socket(10, 3), StreamReassembler()
    reassembler.feed(data(sock, b"bb", 10))
    reassembler.feed(data(sock, b"cccc", 20))
    reassembler.feed(data(sock, b"CCCCC", 20))  # the same offset again: replaces, not adds
    assert reassembler.held(10, 3) == 7 and reassembler.held(10, 4) == 0

    released = list(reassembler.release(10, 3))

    assert summary(released) == [(10, b"bb", 10), (20, b"CCCCC", 8)]
    assert reassembler.held(10, 3) == 0
    # The stream goes on after the last released byte.
    assert summary(reassembler.feed(data(sock, b"d", 25))) == [(25, b"d", 0)]

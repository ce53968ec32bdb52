"""StreamReassembler: bytes in stream order by socket offset, every hole a gap (sans-IO)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_take_in_order_takes_only_a_whole_next_chunk_with_nothing_held() -> None:
    sock, reassembler = Socket(10, 3), StreamReassembler()
    stream = reassembler.stream(10, 3, Direction.EGRESS)

    assert reassembler.take_in_order(stream, 0, 5, 5)  # next, whole: taken
    assert not reassembler.take_in_order(stream, 0, 5, 5)  # now behind the stream
    assert not reassembler.take_in_order(stream, 9, 2, 2)  # ahead of it: a hole before
    assert not reassembler.take_in_order(stream, 5, 4, 2)  # cut by the payload cap
    assert not reassembler.take_in_order(stream, 5, 0, 0)  # no bytes
    # A refused chunk changed nothing: feed() takes it from where the stream is.
    assert summary(list(reassembler.feed(data(sock, b"xy", 5, size=4)))) == [
        (5, b"xy", 0), (9, b"", 2)]  # fmt: skip
    assert list(reassembler.feed(data(sock, b"late", 11))) == []
    assert not reassembler.take_in_order(stream, 15, 1, 1)  # held back: "late" waits at 11
    assert reassembler.held(10, 3) == 4


def test_a_stream_handle_is_the_reassemblers_own_until_the_connection_closes() -> None:
    sock, reassembler = Socket(10, 3), StreamReassembler()
    stream = reassembler.stream(10, 3, Direction.EGRESS)
    assert reassembler.stream(10, 3, Direction.EGRESS) is stream  # asked again: the same
    assert reassembler.take_in_order(stream, 0, 2, 2)
    assert summary(list(reassembler.feed(data(sock, b"c", 2)))) == [(2, b"c", 0)]  # feed saw it
    assert stream.open and stream.next_offset == 3

    assert list(reassembler.close(10, 3)) == []
    assert not stream.open  # stale: its keeper must ask again
    fresh = reassembler.stream(10, 3, Direction.EGRESS)
    assert fresh is not stream and fresh.open and fresh.next_offset == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=0, max_size=6), st.integers(0, 3)), max_size=12),
       st.randoms(use_true_random=False))  # fmt: skip
def test_take_in_order_then_feed_gives_the_bytes_feed_alone_gives(
    pieces: list[tuple[bytes, int]], rng: random.Random,
) -> None:  # fmt: skip
    """The live pipeline's path (take_in_order, else feed) and feed alone give
    the same stream: bytes, gaps and where they fall, whatever the arrival order,
    duplicates and payload cuts."""
    sock = Socket(10, 3)
    events, offset = [], 0
    for payload, cut in pieces:
        events.append(data(sock, payload[: max(len(payload) - cut, 0)], offset, len(payload)))
        offset += len(payload)
    arrival = events + rng.sample(events, k=len(events) // 3)  # some twice
    rng.shuffle(arrival)

    def stream(fast: bool) -> list[tuple[int, bytes, int]]:
        reassembler, out = StreamReassembler(max_pending=4), []
        for event in arrival:
            handle = reassembler.stream(event.pid, event.fd, event.direction)
            if fast and reassembler.take_in_order(handle, event.offset, event.size,
                                                  len(event.data)):  # fmt: skip
                out.append((event.offset, event.data, 0))
            else:
                out += summary(list(reassembler.feed(event)))
        return out + summary(list(reassembler.flush()))

    assert stream(fast=True) == stream(fast=False)

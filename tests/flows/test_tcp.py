"""TcpStream: one direction by sequence number; overlaps trimmed, holes bounded (sans-IO)."""

from __future__ import annotations

from libtrace.flows import Chunk, TcpStream
from libtrace.flows.tcp import MAX_OUT_OF_ORDER_BYTES


def summary(chunks: list[Chunk]) -> list[tuple[bytes, int]]:
    return [(chunk.data, chunk.gap) for chunk in chunks]


def test_an_overlapping_retransmission_gives_only_its_new_bytes() -> None:
    stream = TcpStream()
    stream.syn(999)  # data starts at 1000

    assert summary(stream.segment(1000, b"hello", 1)) == [(b"hello", 0)]
    assert summary(stream.segment(1003, b"lo world", 2)) == [(b" world", 0)]
    assert stream.segment(1000, b"hel", 3) == []  # entirely before: dropped


def test_held_back_bytes_past_the_bound_give_the_hole_up() -> None:
    stream = TcpStream()
    stream.syn(0)
    block = b"x" * (MAX_OUT_OF_ORDER_BYTES // 2)

    assert stream.segment(101, block, 1) == []  # bytes 0-99 missing
    released = stream.segment(101 + len(block), block + b"y", 2)

    assert summary(released)[0] == (b"", 100)  # the hole, declared at once
    assert b"".join(chunk.data for chunk in released) == block + block + b"y"
    assert stream.pending_bytes == 0


def test_a_shorter_copy_of_a_held_back_segment_does_not_replace_it() -> None:
    stream = TcpStream()
    stream.syn(0)
    stream.segment(11, b"abcdef", 1)
    stream.segment(11, b"abc", 2)

    assert summary(stream.flush()) == [(b"", 10), (b"abcdef", 0)]
    assert stream.eof

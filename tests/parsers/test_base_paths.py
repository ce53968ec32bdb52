"""StreamParser paths no protocol test takes: the transport check, the buffer and
message bounds, the datagram queue bound, the resync tail, the first of two
desyncs, a gap inside a skipped body, the default ``_resync`` of a parser
that has none of its own, and which chunk's time a buffered byte has."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libtrace.parsers import (
    Desync,
    Direction,
    DnsParser,
    Http1Parser,
    Http1Request,
    Http1Response,
    MalformedError,
    Message,
    RedisParser,
    RedisResponse,
    Side,
    StreamParser,
    spec_for,
)
from libtrace.parsers._limits import MAX_BUFFER_BYTES, MAX_RESYNC_TAIL


def test_a_parser_refuses_a_transport_its_protocol_does_not_run_over() -> None:
    with pytest.raises(ValueError, match="http1 does not run over udp"):
        Http1Parser(transport="udp")
    assert DnsParser(transport="tcp").transport == "tcp"
    assert (spec_for("http1").transports, spec_for("dns").transports) == (("tcp",), ("udp", "tcp"))


def test_bytes_fed_after_a_body_that_runs_to_the_end_are_dropped_as_they_come() -> None:
    parser = Http1Parser()
    parser.feed("request", b"GET / HTTP/1.0\r\n\r\n", 1)
    parser.feed("response", b"HTTP/1.0 200 OK\r\n\r\nfirst part", 2)
    assert [type(e) for e in parser.events()] == [Http1Request]
    parser.feed("response", b"x" * 100_000, 3)  # skipped in feed: never buffered
    assert not parser._sides[Direction.RESPONSE].buf
    parser.feed("response", b"", 4)
    (resp,) = parser.events()
    assert isinstance(resp, Http1Response) and (resp.status, resp.errors) == (200, ())


def test_a_direction_never_pulled_is_dropped_beyond_twice_the_buffer_bound() -> None:
    parser = RedisParser()
    value = b"$%d\r\n" % MAX_BUFFER_BYTES  # a bulk string whose bytes are still coming
    parser.feed("response", value + b"a" * (MAX_BUFFER_BYTES + MAX_BUFFER_BYTES // 2), 1)
    parser.feed("response", b"b" * (MAX_BUFFER_BYTES // 2 + 1), 2)  # over 2 x the bound
    side = parser._sides[Direction.RESPONSE]
    assert len(side.buf) == MAX_BUFFER_BYTES // 2 + 1  # only the newest piece is kept
    assert parser.events() == [Desync(direction=Direction.RESPONSE, ts_ns=2,
                                      reason="buffer limit exceeded before parsing")]  # fmt: skip


def test_a_message_larger_than_the_buffer_bound_is_dropped_at_the_latest_chunk_time() -> None:
    parser = RedisParser()
    parser.feed("response", b"$%d\r\n" % MAX_BUFFER_BYTES + b"a" * (MAX_BUFFER_BYTES // 2), 1)
    assert parser.events() == []
    parser.feed("response", b"a" * (MAX_BUFFER_BYTES // 2), 2)  # its CRLF not yet here
    assert parser.events() == [Desync(direction=Direction.RESPONSE, ts_ns=2,
                                      reason=f"message larger than {MAX_BUFFER_BYTES} bytes")]
    parser.feed("response", b"+OK\r\n", 3)
    assert [(type(e), e.value) for e in parser.events()] == [(RedisResponse, "OK")]


def test_the_datagram_queue_is_bounded_when_never_pulled() -> None:
    parser = DnsParser()
    bound = MAX_BUFFER_BYTES // 512
    for ts in range(bound + 10):
        parser.feed("request", b"\x00" * 5, ts)  # each one a desync when pulled
    evs = parser.events()
    assert len(evs) == bound and all(isinstance(e, Desync) for e in evs)
    assert evs[-1].ts_ns == bound - 1  # the ones beyond the bound were dropped, not older ones


def test_two_desyncs_before_a_pull_give_one_event_with_the_first_reason() -> None:
    parser = Http1Parser()
    parser.feed_gap("response", 100, 1)
    parser.feed_gap("response", 50, 2)
    assert parser.events() == [Desync(direction=Direction.RESPONSE, ts_ns=1,
                                      reason="100 bytes missing")]  # fmt: skip


def test_a_resync_that_finds_nothing_keeps_only_a_tail_of_the_bytes() -> None:
    parser = Http1Parser(mid_stream=True)
    parser.feed("request", b"x" * (3 * MAX_RESYNC_TAIL), 1)
    assert parser.events() == []
    assert len(parser._sides[Direction.REQUEST].buf) == MAX_RESYNC_TAIL
    parser.feed("request", b"\nGET /after HTTP/1.1\r\n\r\n", 2)
    assert [(type(e), e.path, e.ts_ns) for e in parser.events()] == [(Http1Request, "/after", 2)]


# -- a parser with no _resync of its own -------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class LineMessage(Message):
    text: str

    @property
    def protocol(self) -> str:
        return "line"


class LineParser(StreamParser):
    """Lines of printable ASCII; nothing else.  No ``_resync``: the base's applies."""

    protocol = "line"

    def _parse(self, side: Side) -> Message | None:
        end = side.buf.find(b"\n")
        if end < 0:
            return None
        line = bytes(side.buf[:end])
        if not all(0x20 <= b < 0x7F for b in line):
            raise MalformedError(f"not a line: {line[:8]!r}")
        ts = side.ts_at(0)
        side.consume(end + 1)
        return LineMessage(ts_ns=ts, size=end + 1, text=line.decode(), _parsed=True)


def test_without_a_resync_of_its_own_a_parser_drops_what_follows_an_error() -> None:
    """The base cannot find a boundary: it drops the buffered bytes and goes on
    dropping, since nothing ever tells it where a message starts again."""
    parser = LineParser()
    parser.feed("request", b"one\n\x00bad\ntwo\n", 1)
    assert parser.events() == [
        LineMessage(ts_ns=1, size=4, text="one"),
        Desync(direction=Direction.REQUEST, ts_ns=1,
               reason="MalformedError: not a line: b'\\x00bad'"),
    ]  # fmt: skip
    parser.feed("request", b"three\n", 2)
    assert parser.events() == [] and not parser._sides[Direction.REQUEST].buf
    parser.feed("response", b"other side\n", 3)  # the other direction is untouched
    assert parser.events() == [LineMessage(ts_ns=3, size=11, text="other side")]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(0, 6)), min_size=1, max_size=10))
def test_a_sides_timestamp_of_a_byte_is_that_of_the_chunk_that_carried_it(
    chunks: list[tuple[int, int]],
) -> None:
    """``ts_at`` and ``last_ts`` against a model that keeps every chunk's start
    and time, through appends and consumes in any order (the marks are an int for
    the chunk at ``buf[0]`` and a list for later ones)."""
    side = Side(Direction.REQUEST)
    starts: list[tuple[int, int]] = []  # (stream offset, ts) of every chunk ever fed

    def model(offset: int) -> int:
        """The time of the last chunk that starts at or before ``offset``."""
        return max((start for start in starts if start[0] <= offset), default=(0, 0))[1]

    fed = 0
    for ts, (size, eat) in enumerate(chunks, start=1):
        side.append(b"x" * size, ts)
        starts.append((fed, ts))
        fed += size
        side.consume(eat)  # may take more than is buffered: then all
        assert side.last_ts == ts
        for pos in range(len(side.buf)):
            assert side.ts_at(pos) == model(side.consumed + pos)
        if not side.buf:  # all consumed: the newest chunk's time
            assert side.ts_at(0) == ts
    assert side.consumed + len(side.buf) == fed


class _OtherBytes(bytes):
    """Bytes of another type: a side copies them at once (only ``bytes`` stays lazy)."""


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(
    st.sampled_from(["bytes", "subclass", "consume", "read"]),
    st.binary(min_size=1, max_size=6),
    st.integers(0, 8),
), max_size=16))  # fmt: skip
def test_a_side_holds_what_was_fed_less_what_was_consumed_lazy_or_not(
    steps: list[tuple[str, bytes, int]],
) -> None:
    """A chunk fed into an empty side stays in its ``head`` (lazy) until ``buf``
    is read or another chunk comes; against a plain bytes model, through any
    order of appends (bytes, which may stay lazy, and a bytes subclass, which does not),
    consumes and reads: ``size()``, ``first()``, ``buf`` and the ``head`` window
    always agree with the model."""
    side = Side(Direction.REQUEST)
    model = b""
    for ts, (op, data, n) in enumerate(steps, start=1):
        if op == "bytes":
            side.append(data, ts)
            model += data
        elif op == "subclass":
            side.append(_OtherBytes(data), ts)
            model += data
        elif op == "consume":
            side.consume(n)
            model = model[n:]
        else:
            assert side.buf == model
        assert side.size() == len(model)
        assert side.first() == (model[0] if model else -1)
        if side.head is not None:
            assert side.head[side.head_at:] == model
    assert bytes(side.buf) == model and side.size() == len(model)

"""Inputs ``tox -e fuzz-deep`` found, cut down by hand, each kept with the fix it led to."""

from __future__ import annotations

import struct
from typing import Any

import dns.message
import hpack
import pytest

from libtrace.parsers import (
    Desync,
    DnsParser,
    DnsResponse,
    Http1Parser,
    Http1Request,
    Http1Response,
    Http2Parser,
    Http2Request,
    Http2Response,
    KafkaParser,
    KafkaRequest,
    MalformedError,
    RedisParser,
    RedisRequest,
    RedisResponse,
    _http2,
    _redis,
)
from libtrace.parsers._dns import decode_dns
from libtrace.parsers._enums import MAX_UNKNOWN_MEMBERS
from libtrace.parsers._http2 import plausible_frame_header
from libtrace.parsers._limits import MAX_RESYNC_TAIL

from ._harness import fed_whole


def test_http1_head_cut_by_a_response_with_a_bad_header_before_the_cut() -> None:
    """A request head still incomplete when a response begins comes out partial;
    a header line before the cut that does not parse made ``next_event`` raise
    MalformedError.  Now the request is not kept (the response still is), and
    once the head is complete it is a desync as any bad head is."""
    parser = Http1Parser()
    events = fed_whole(parser, b"GET /nope HTTP/1.1\r\nHostA\x00ned\r\nConn",
                       b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")  # fmt: skip
    assert [type(e) for e in events] == [Http1Response]
    parser.feed("request", b"ection: close\r\n\r\n", 3)
    assert [e.reason for e in parser.events()] == [  # type: ignore[union-attr]
        "MalformedError: invalid header line b'HostA\\x00ned'"]


def test_http2_hunt_fed_in_small_pieces_looks_at_each_start_once(
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Mid-stream garbage fed 64 bytes at a time: each offset is tried once, not
    once per piece over the whole kept tail (which cost seconds for 64 KiB)."""
    tried = 0

    def counting(head: bytes | bytearray, max_length: int = 1 << 14) -> bool:
        nonlocal tried
        tried += 1
        return plausible_frame_header(head, max_length)

    monkeypatch.setattr(_http2, "plausible_frame_header", counting)
    parser = Http2Parser(mid_stream=True)
    garbage = bytes(range(256)) * 256  # no nine bytes of it make a plausible frame header
    for at in range(0, len(garbage), 64):
        parser.feed("request", garbage[at:at + 64], at)
        assert parser.events() == []
    assert tried <= len(garbage)
    assert parser.buffered() <= MAX_RESYNC_TAIL


def test_redis_reply_in_many_pieces_reads_each_element_once(
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """A 10 000-element reply in 100 pieces: each element is read once (and at
    most one more time per piece, the one the piece cut), not again from the
    start of the reply for every piece (quadratic: seconds for 160 KB)."""
    reads = 0
    real = _redis.parse_value

    def counting(buf: bytearray, pos: int = 0, depth: int = 0) -> tuple[Any, int]:
        nonlocal reads
        reads += 1
        return real(buf, pos, depth)

    monkeypatch.setattr(_redis, "parse_value", counting)
    reply = b"*10000\r\n" + b"".join(b"$%d\r\n%d\r\n" % (len(str(i)), i) for i in range(10000))
    parser = RedisParser()
    parser.feed("request", b"*3\r\n$6\r\nLRANGE\r\n$1\r\nk\r\n$2\r\n-1\r\n", 0)
    events = parser.events()
    step = len(reply) // 100 + 1
    for at in range(0, len(reply), step):
        parser.feed("response", reply[at:at + step], at)
        events += parser.events()
    assert [type(e) for e in events] == [RedisRequest, RedisResponse]
    assert events[1].fields()["length"] == 10000
    assert reads <= 10000 + 100


def test_redis_reply_cut_then_lost_is_not_resumed() -> None:
    """An aggregate cut short, then a gap: what it had read is dropped, and the
    next reply is read from its own start."""
    parser = RedisParser()
    events = fed_whole(parser, b"*1\r\n$3\r\nGET\r\n", b"*3\r\n:1\r\n:2\r\n")
    assert [type(e) for e in events] == [RedisRequest]
    parser.feed_gap("response", 100, 3)
    parser.feed("response", b"*2\r\n:7\r\n:8\r\n", 4)
    events = parser.events()
    assert [type(e) for e in events] == [Desync, RedisResponse]
    assert events[1].fields()["length"] == 2


def test_kafka_hunt_through_garbage_of_ever_new_api_keys() -> None:
    """Mid-stream, the resync read an API key at each candidate offset; past
    1024 new ones the open enum raised ValueError out of ``next_event`` (the
    enum no longer raises, and the resync no longer looks unknown keys up)."""
    # size 11, an API key never seen, version 0, a correlation id, no client
    # id, no tags: a header that reads, of a key the enum does not name
    garbage = b"".join(struct.pack(">ihhihb", 11, 20_000 + key, 0, key, -1, 0)
                       for key in range(MAX_UNKNOWN_MEMBERS + 100))  # fmt: skip
    parser = KafkaParser(mid_stream=True)
    for at in range(0, len(garbage), 1460):
        parser.feed("request", garbage[at:at + 1460], at)
        assert all(isinstance(e, (Desync, KafkaRequest)) for e in parser.events())
    assert parser.buffered() <= MAX_RESYNC_TAIL


def test_dns_tcp_hunt_does_not_read_messages_whose_counts_cannot_fit(
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Mid-stream DNS over TCP, through 12 KB of 0x05 bytes (at every offset a
    1285-byte message of 1285 questions and 3855 records): no offset is worth
    handing to dnspython, which read up to all of each (30 s for 48 KB)."""
    reads = 0
    real = dns.message.from_wire

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(dns.message, "from_wire", counting)
    parser = DnsParser(transport="tcp", mid_stream=True)
    parser.feed("response", b"\x05" * 12_000, 1)
    assert parser.events() == []
    assert reads == 0
    assert parser.buffered() <= MAX_RESYNC_TAIL


def test_dns_strict_reading_refuses_counts_that_cannot_fit() -> None:
    one_question = struct.pack(">HHHHHH", 7, 0x8180, 1, 0, 0, 0) + b"\x00\x00\x01\x00\x01"
    assert isinstance(decode_dns(one_question, 0, strict=True), DnsResponse)
    with pytest.raises(MalformedError, match="counts do not fit"):
        decode_dns(one_question[:4] + b"\x00\x02" + one_question[6:], 0, strict=True)


@pytest.mark.parametrize("value", [b"1\xb9", b"\xb2", b"\xb3"])  # 1¹, ², ³ in Latin-1
def test_http1_content_length_of_superscript_digits(value: bytes) -> None:
    """A header value is read as Latin-1, where str.isdigit() takes the
    superscripts that int() refuses: the ValueError escaped next_event."""
    parser = Http1Parser()
    head = b"HTTP/1.1 200 OK\r\nContent-Length: " + value + b"\r\n\r\n"
    events = fed_whole(parser, b"GET / HTTP/1.1\r\n\r\n", head)
    assert [type(e) for e in events] == [Http1Request, Desync]
    assert events[1].reason.startswith("MalformedError: invalid Content-Length")  # type: ignore[union-attr]


def test_http2_status_and_grpc_status_of_superscript_digits() -> None:
    """HTTP/2's header values are UTF-8, where "²" is a digit to str.isdigit()
    and not to int(): the ValueError escaped next_event; the response is now
    kept without a status."""
    encoder = hpack.Encoder()
    request = encoder.encode([(":method", "GET"), (":path", "/"), (":scheme", "http"),
                              (":authority", "x")])  # fmt: skip
    response = hpack.Encoder().encode([(":status", "²"), ("grpc-status", "²")])
    parser = Http2Parser()
    events = fed_whole(parser, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _h2_frame(1, 5, 1, request),
                       _h2_frame(1, 5, 1, response))  # fmt: skip
    assert [type(e) for e in events] == [Http2Request, Http2Response]
    assert events[1].fields()["status"] is None
    assert events[1].fields()["grpc_status"] is None


def _h2_frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    head = len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + stream.to_bytes(4, "big")
    return head + payload

"""Inputs shaped like other tracers' parser incidents, each fed to the real parser.

Every shape must end in a clear outcome (a desync, or a message that carries
its errors) with nothing left buffered beyond the limits, and without an
exception escaping: the fuzzer (``tox -e fuzz-deep``) looks for such inputs at
random, these name the ones known to have hurt someone.
"""

from __future__ import annotations

import struct

import pytest

from libtrace.parsers import (
    Desync,
    DnsParser,
    DnsResponse,
    Http1Parser,
    Http1Request,
    Http2Parser,
    Http2Request,
    KafkaParser,
    KafkaRequest,
    MqttParser,
    MysqlParser,
    MysqlResponse,
    RedisParser,
    RedisResponse,
)
from libtrace.parsers._limits import (
    MAX_BUFFER_BYTES,
    MAX_DNS_ANSWERS_KEPT,
    MAX_RESP_DEPTH,
    MAX_RESYNC_TAIL,
)

from ._harness import fed_whole, reasons
from .test_kafka import kstr, uvarint
from .test_mysql import greeting, login, ok, pkt, query

DNS_HEADER = struct.pack(">HHHHHH", 0x1234, 0x8180, 1, 0, 0, 0)  # a response, one question
QUESTION_TAIL = b"\x00\x01\x00\x01"  # type A, class IN


def _pointer(offset: int) -> bytes:
    return struct.pack(">H", 0xC000 | offset)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize(("name", "pointer_to"), [
    ("self", 12),  # the question's name is a pointer to itself: a loop
    ("forward", 40),  # to bytes after it (past the end, even)
])  # fmt: skip
def test_dns_compression_pointer_loops(transport: str, name: str, pointer_to: int) -> None:
    wire = DNS_HEADER + _pointer(pointer_to) + QUESTION_TAIL
    parser = DnsParser(transport=transport)  # type: ignore[arg-type]
    events = fed_whole(parser, response=wire if transport == "udp"
                       else struct.pack(">H", len(wire)) + wire, end=True)  # fmt: skip
    assert [type(e) for e in events] == [Desync]
    assert "BadPointer" in reasons(events)[0]
    assert parser.buffered() == 0


def test_dns_compression_pointer_chain() -> None:
    """200 answers, the name of each a pointer to the previous one's (a chain of
    pointers to pointers, backward, 200 hops at the end): dnspython (2.9 here)
    refuses a chain too long, and the response is kept with the answers before
    it and the error; a dnspython without that bound would follow them all, and
    the record keeps its first MAX_DNS_ANSWERS_KEPT."""
    wire = bytearray(struct.pack(">HHHHHH", 0x1234, 0x8180, 1, 200, 0, 0))
    wire += b"\x01a\x00" + QUESTION_TAIL
    previous = 12  # the question's name
    for _ in range(200):
        at = len(wire)
        wire += _pointer(previous) + QUESTION_TAIL + struct.pack(">IH", 60, 4) + bytes(4)
        previous = at
    parser = DnsParser()
    events = fed_whole(parser, response=bytes(wire))
    assert [type(e).__name__ for e in events] == ["DnsResponse"]
    response = events[0]
    assert isinstance(response, DnsResponse)
    if response.errors:
        assert response.errors == ("PointerChainTooLong: A DNS compression pointer chain "
                                   "was too long.",)  # fmt: skip
        assert 0 < len(response.answers) < MAX_DNS_ANSWERS_KEPT
    else:
        assert len(response.answers) == MAX_DNS_ANSWERS_KEPT
    assert {a["name"] for a in response.answers} == {"a."}
    assert parser.buffered() == 0


@pytest.mark.parametrize(("depth", "kept"), [
    (MAX_RESP_DEPTH, True),  # at the limit: parsed
    (MAX_RESP_DEPTH + 1, False),  # one beyond: a desync
    (1_500, False),  # far beyond (past Python's recursion limit): a desync
])  # fmt: skip
def test_resp_nested_to_the_limit_and_beyond(depth: int, kept: bool) -> None:
    parser = RedisParser()
    events = fed_whole(parser, response=b"*1\r\n" * depth + b":1\r\n", end=True)
    if kept:
        assert [type(e) for e in events] == [RedisResponse]
        assert events[0].fields()["type"] == "array"
    else:
        assert isinstance(events[0], Desync)
        assert reasons(events)[0] == f"LimitExceededError: RESP nested deeper than {MAX_RESP_DEPTH}"
    assert parser.buffered() == 0


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: :method GET, :path /, :scheme http (static table entries 2, 4, 6)
GOOD_BLOCK = b"\x82\x84\x86"


def _frame(ftype: int, flags: int, stream: int, payload: bytes) -> bytes:
    head = len(payload).to_bytes(3, "big") + bytes([ftype, flags]) + stream.to_bytes(4, "big")
    return head + payload


def _hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    """RFC 7541 section 5.1: an integer with an ``prefix_bits`` prefix in ``first``."""
    top = (1 << prefix_bits) - 1
    if value < top:
        return bytes([first | value])
    out, value = bytearray([first | top]), value - top
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


@pytest.mark.parametrize(("block", "reason"), [
    # a dynamic table size update to 4 GiB before a header (RFC 7541 6.3)
    (_hpack_int(1 << 32, 5, 0x20) + GOOD_BLOCK, "exceeded max allowable table size"),
    # ten thousand size updates in a row: each allowed, none allocates
    (_hpack_int(4096, 5, 0x20) * 10_000 + GOOD_BLOCK, None),
    # a literal whose Huffman-coded name is five bytes of 1s (EOS padding > 7 bits)
    (b"\x00\x85" + b"\xff" * 5 + b"\x01x", "Invalid Huffman string"),
    # a Huffman string that stops inside a code
    (b"\x00\x81\xff\x81\xff", "Incomplete Huffman string"),
])  # fmt: skip
def test_hpack_table_size_bombs_and_huffman_garbage(block: bytes, reason: str | None) -> None:
    parser = Http2Parser()
    request = PREFACE + _frame(4, 0, 0, b"") + _frame(1, 5, 1, block) + _frame(1, 5, 3, GOOD_BLOCK)
    events = fed_whole(parser, request)
    if reason is None:
        assert [type(e) for e in events] == [Http2Request, Http2Request]
    else:
        assert [type(e) for e in events] == [Desync, Http2Request]  # stream 3 still read
        assert reason in reasons(events)[0]
    assert parser.buffered() == 0


def _kafka_produce_v9(body: bytes) -> bytes:
    """A flexible (v9) Produce request of ``body`` (after the client id)."""
    frame = struct.pack(">hhi", 0, 9, 7) + kstr("app", False) + body
    return struct.pack(">i", len(frame)) + frame


@pytest.mark.parametrize(("body", "outcome"), [
    # no header tags, a null transactional id, acks, timeout, then a compact
    # array of 2**32 - 2 topics: the request is kept with its error
    (uvarint(0) + uvarint(0) + struct.pack(">hi", 1, 1000) + uvarint(0xFFFF_FFFF), KafkaRequest),
    # 2**32 - 1 tagged fields in the header, 8 bytes to read them from
    (uvarint(0xFFFF_FFFF) + bytes(8), Desync),
    # one tagged field that claims 4 GiB
    (uvarint(1) + uvarint(0) + uvarint(0xFFFF_FFFF) + bytes(8), Desync),
])  # fmt: skip
def test_kafka_huge_array_and_tagged_field_counts(body: bytes, outcome: type) -> None:
    parser = KafkaParser()
    events = fed_whole(parser, _kafka_produce_v9(body) * 2, end=True)
    assert events and type(events[0]) is outcome
    if outcome is KafkaRequest:
        assert [type(e) for e in events] == [KafkaRequest, KafkaRequest]
        assert "TruncatedError" in events[0].errors[0]
    assert parser.buffered() == 0


@pytest.mark.parametrize(("payload", "outcome"), [
    (b"\x00\xfe\x01", "TruncatedError: need 8 bytes"),  # OK: affected rows 0xFE, 1 of 8 bytes
    (b"\x00\xff", "MalformedError: 0xFF is not a length-encoded integer"),  # OK: affected 0xFF
    (b"\x00\xfb\xfb\x02\x00\x00\x00", "ok"),  # OK with NULL (0xFB) counts: an OK all the same
    (b"\xfc\x01", "TruncatedError: need 2 bytes"),  # column count 0xFC with 1 of 2 bytes
    (b"\xfb", "MalformedError: result set with None columns"),  # column count NULL
    (b"\xfe\x01\x02", "eof"),  # 0xFE in a packet shorter than 9: an EOF, not an integer
])  # fmt: skip
def test_mysql_length_encoded_integers_in_short_packets(payload: bytes, outcome: str) -> None:
    parser = MysqlParser()
    for direction, data in (("response", greeting()), ("request", login()), ("response", ok(2)),
                            ("request", query("select 1")), ("response", pkt(1, payload))):
        parser.feed(direction, data, 1)
    events = parser.events()
    last = events[-1]
    if isinstance(last, MysqlResponse):
        assert last.fields()["kind"] == outcome
    else:
        assert isinstance(last, Desync)
        assert last.reason.startswith(outcome)
    assert parser.buffered() <= MAX_RESYNC_TAIL  # what a resync keeps while it hunts


@pytest.mark.parametrize("first", [0x10, 0x30, 0xC0])  # CONNECT, PUBLISH, PINGREQ
def test_mqtt_five_byte_remaining_length(first: int) -> None:
    """A Variable Byte Integer has at most 4 bytes: a fifth is malformed at once,
    not a length to wait for; the PINGREQ after it is found."""
    parser = MqttParser()
    events = fed_whole(parser, bytes([first]) + b"\xff\xff\xff\xff\x7f" + bytes(20) + b"\xc0\x00")
    assert reasons(events) == ["MalformedError: MQTT remaining length longer than 4 bytes"]
    assert [e.fields()["packet_type"] for e in events if not isinstance(e, Desync)] == ["PINGREQ"]
    assert parser.buffered() == 0


def test_mqtt_largest_four_byte_length_is_skipped_not_buffered() -> None:
    """The largest legal length (256 MiB) on a PUBLISH: its head is read and its
    payload skipped as it comes, never buffered."""
    parser = MqttParser()
    events = fed_whole(parser, b"\x30\xff\xff\xff\x7f\x00\x01t" + b"x" * 1000)
    for _ in range(2 * MAX_BUFFER_BYTES // (1 << 20) + 1):
        parser.feed("request", b"y" * (1 << 20), 2)
        events += parser.events()
        assert parser.buffered() == 0
    assert [e.fields()["packet_type"] for e in events] == ["PUBLISH"]


@pytest.mark.parametrize(("head", "reason"), [
    (b"Transfer-Encoding: chunked\r\n\r\n" + b"f" * 30 + b"\r\nxyz\r\n0\r\n\r\n",
     "LimitExceededError: chunk size of 1.33e+36 bytes"),
    (b"Content-Length: " + b"9" * 30 + b"\r\n\r\n",
     "LimitExceededError: Content-Length of 1e+30 bytes"),
])  # fmt: skip
def test_http1_thirty_hex_digit_chunk_size(head: bytes, reason: str) -> None:
    """A size no server accepts (beyond 2**63 - 1) is a desync, not a body that
    swallows the rest of the connection: the next request is still read."""
    parser = Http1Parser()
    events = fed_whole(parser, b"POST /up HTTP/1.1\r\n" + head + b"GET /next HTTP/1.1\r\n\r\n",
                       end=True)  # fmt: skip
    assert reasons(events) == [reason]
    assert [e.fields()["path"] for e in events if isinstance(e, Http1Request)][-1:] == ["/next"]
    assert parser.buffered() <= MAX_RESYNC_TAIL

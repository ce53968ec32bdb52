"""HTTP/2 paths the conversation tests do not take: frame-level errors, CONTINUATION,
push promises, trailers, interim responses, resets, the stream bound, and the
signature's reading of a first header block.

Frames are serialised with hyperframe and header blocks encoded with hpack (the
libraries h2 itself uses), so each case is the exact bytes a peer would send."""

from __future__ import annotations

import h2.config
import h2.connection
import hpack
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

from libtrace.parsers import (
    Direction,
    Http2Parser,
    Http2Request,
    Http2Response,
    MalformedError,
    Pairer,
    Status,
)
from libtrace.parsers._hpack import TolerantDecoder
from libtrace.parsers._http2 import PREFACE, SPEC, plausible_frame_header
from libtrace.parsers._limits import MAX_H2_FRAME_BYTES, MAX_H2_STREAMS, MAX_HEADERS

from ._harness import assert_split_invariant, fed_whole, messages, reasons

REQ = [(":method", "GET"), (":path", "/a"), (":authority", "svc"), (":scheme", "http")]
OK = [(":status", "200")]


def headers(stream_id: int, block: bytes, *flags: str) -> bytes:
    return HeadersFrame(stream_id, data=block, flags=flags).serialize()


def events(request: bytes = b"", response: bytes = b"", *, mid: bool = False,
           end: bool = False) -> list:  # fmt: skip
    return fed_whole(Http2Parser(mid_stream=mid), request, response, end=end)


# -- header blocks -------------------------------------------------------------------------
def test_a_header_block_split_over_continuation_frames_is_one_request() -> None:
    block = hpack.Encoder().encode([*REQ, ("x-long", "v" * 40)])
    request = (PREFACE + headers(1, block[:10], "END_STREAM")
               + ContinuationFrame(1, data=block[10:30]).serialize()
               + ContinuationFrame(1, data=block[30:], flags=["END_HEADERS"]).serialize())
    evs = assert_split_invariant(Http2Parser, request, b"", [5, 30, 41, 60])
    (req,) = evs
    assert isinstance(req, Http2Request)
    assert (req.stream_id, req.method, req.path, req.authority) == (1, "GET", "/a", "svc")
    assert ("x-long", "v" * 40) in req.headers and not req.errors


def test_a_continuation_without_a_header_block_is_a_desync() -> None:
    stray = ContinuationFrame(1, data=b"\x82\x84", flags=["END_HEADERS"]).serialize()
    evs = events(PREFACE + stray)
    assert reasons(evs) == ["MalformedError: CONTINUATION without a header block"]
    assert not messages(evs)


def test_a_continuation_of_another_stream_is_a_desync() -> None:
    block = hpack.Encoder().encode(REQ)
    request = (PREFACE + headers(1, block[:3])
               + ContinuationFrame(3, data=block[3:], flags=["END_HEADERS"]).serialize())
    evs = events(request)
    assert reasons(evs) == ["MalformedError: CONTINUATION without a header block"]
    assert not messages(evs)


def test_a_header_block_interrupted_by_another_frame_is_a_desync() -> None:
    block = hpack.Encoder().encode(REQ)
    request = PREFACE + headers(1, block[:3]) + PingFrame(0, opaque_data=b"12345678").serialize()
    assert reasons(events(request)) == [
        "MalformedError: header block interrupted before END_HEADERS"]


def test_a_header_block_over_the_frame_bound_is_a_desync() -> None:
    first = headers(1, b"\x00" * MAX_H2_FRAME_BYTES)  # no END_HEADERS: the block goes on
    more = ContinuationFrame(1, data=b"\x00", flags=["END_HEADERS"]).serialize()
    assert reasons(events(PREFACE + first + more)) == [
        "LimitExceededError: header block too large"]


def test_more_header_fields_than_the_bound_is_a_desync() -> None:
    block = hpack.Encoder().encode([*REQ, *((f"x-h{i}", "v") for i in range(MAX_HEADERS))])
    evs = events(PREFACE + headers(1, block, "END_HEADERS", "END_STREAM"))
    assert reasons(evs) == [f"LimitExceededError: more than {MAX_HEADERS} header fields"]
    assert not messages(evs)


def test_an_invalid_hpack_block_is_a_desync() -> None:
    # 0x80: an indexed field with index 0, which RFC 7541 (6.1) makes a decoding error
    evs = events(PREFACE + headers(1, b"\x80", "END_HEADERS"))
    (reason,) = reasons(evs)
    assert reason.startswith("MalformedError: invalid HPACK block:")
    assert not messages(evs)


def test_the_tolerant_decoder_rejects_index_zero_and_forgets_its_table() -> None:
    decoder = TolerantDecoder()
    decoder.decode(b"\x40\x01x\x01y")  # literal with incremental indexing: x: y enters at 62
    assert decoder.decode(b"\xbe") == ([("x", "y")], ())  # 0xbe: index 62
    with pytest.raises(MalformedError, match="invalid HPACK block"):
        decoder.decode(b"\x80")
    # the table was reset: index 62 is now unknown, reported, not decoded
    assert decoder.decode(b"\xbe") == (
        [], ("unknown HPACK dynamic table index 62 (capture started mid-connection)",))


def test_unknown_indexes_are_reported_up_to_the_headers_a_message_keeps() -> None:
    """A block of 4 000 one-byte references to a fresh table (what the header list
    bound lets through): a bounded number of errors."""
    headers_, errors = TolerantDecoder().decode(b"\xbe" * 4000)  # index 62, unknown
    assert headers_ == []
    assert len(errors) == MAX_HEADERS + 1
    assert errors[0] == "unknown HPACK dynamic table index 62 (capture started mid-connection)"
    assert errors[-1] == f"and {4000 - MAX_HEADERS} more unknown HPACK dynamic table indexes"


# -- frame errors --------------------------------------------------------------------------
def test_a_stream_frame_on_stream_zero_is_an_invalid_frame_header() -> None:
    zero = b"\x00\x00\x01\x01\x04\x00\x00\x00\x00\x82"  # HEADERS, END_HEADERS, stream 0
    (reason,) = reasons(events(PREFACE + zero))
    assert reason.startswith("MalformedError: invalid frame header:")
    assert "Stream ID must be non-zero" in reason


def test_a_frame_over_the_bound_is_refused_from_its_header_alone() -> None:
    huge = b"\xff\xff\xff\x01\x04\x00\x00\x00\x01"  # HEADERS of 16 MiB - 1, nothing after
    assert reasons(events(PREFACE + huge)) == ["LimitExceededError: HeadersFrame of 16777215 bytes"]


def test_a_frame_whose_body_does_not_parse_is_a_desync() -> None:
    short_rst = b"\x00\x00\x03\x03\x00\x00\x00\x00\x01\x00\x00\x08"  # RST_STREAM needs 4 bytes
    (reason,) = reasons(events(response=short_rst))
    assert reason.startswith("MalformedError: invalid RstStreamFrame:")


def test_a_client_may_not_open_an_even_stream() -> None:
    evs = events(PREFACE + headers(2, hpack.Encoder().encode(REQ), "END_HEADERS"))
    assert reasons(evs) == ["MalformedError: client opened even stream 2"]
    assert not messages(evs)


def test_a_client_whose_preface_was_not_captured_starts_at_its_first_frame() -> None:
    evs = events(headers(1, hpack.Encoder().encode(REQ), "END_HEADERS", "END_STREAM"))
    assert [(type(e), e.stream_id, e.path) for e in evs] == [(Http2Request, 1, "/a")]


# -- the life of a stream ------------------------------------------------------------------
def _client_server() -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    return client, server


def test_request_trailers_do_not_make_a_second_request() -> None:
    client, server = _client_server()
    client.send_headers(1, [(":method", "POST"), *REQ[1:]])
    client.send_data(1, b"body")
    client.send_headers(1, [("x-checksum", "abc")], end_stream=True)
    request = client.data_to_send()
    server.receive_data(request)
    server.send_headers(1, OK, end_stream=True)
    evs = events(request, server.data_to_send())
    assert [(type(m).__name__, m.stream_id) for m in messages(evs)] == [
        ("Http2Request", 1), ("Http2Response", 1)]
    assert evs[0].method == "POST" and ("x-checksum", "abc") not in evs[0].headers
    assert not reasons(evs)


def test_an_interim_100_continue_is_not_the_response() -> None:
    client, server = _client_server()
    client.send_headers(1, [(":method", "POST"), *REQ[1:], ("expect", "100-continue")])
    client.send_data(1, b"x", end_stream=True)
    request = client.data_to_send()
    server.receive_data(request)
    server.send_headers(1, [(":status", "100")])
    server.send_headers(1, [(":status", "201")], end_stream=True)
    (resp,) = [m for m in messages(events(request, server.data_to_send()))
               if isinstance(m, Http2Response)]  # fmt: skip
    assert (resp.status, resp.headers) == (201, ((":status", "201"),))


def test_a_push_promise_is_decoded_but_is_no_message() -> None:
    """A promise is neither request nor response, but its header block enters the
    server's HPACK table: the pushed response's x-cache refers to the entry it made."""
    client, server = _client_server()
    client.send_headers(1, REQ, end_stream=True)
    request = client.data_to_send()
    server.receive_data(request)
    server.push_stream(1, 2, [(":method", "GET"), (":path", "/style.css"),
                              (":authority", "svc"), (":scheme", "http"), ("x-cache", "hit")])
    server.send_headers(2, [(":status", "200"), ("x-cache", "hit")], end_stream=True)
    server.send_headers(1, OK, end_stream=True)
    response = server.data_to_send()
    # stream 2's block: 0x88 (:status 200, static) and 0xbe (dynamic index 62, the
    # newest entry: the promise's x-cache), which only a decoder that read the promise knows
    assert HeadersFrame(2, data=b"\x88\xbe", flags=["END_HEADERS", "END_STREAM"]).serialize() \
        in response
    evs = events(request, response)
    got = [(type(m).__name__, m.stream_id, m.headers, m.errors) for m in messages(evs)]
    assert got == [("Http2Request", 1, tuple(REQ), ()),
                   ("Http2Response", 2, ((":status", "200"), ("x-cache", "hit")), ()),
                   ("Http2Response", 1, tuple(OK), ())]  # fmt: skip
    assert not reasons(evs)


def test_data_before_any_response_headers_times_the_response() -> None:
    """A response whose HEADERS were not captured is known from its DATA: no
    status, its body counted, its time that of the DATA."""
    parser = Http2Parser()
    parser.feed("request", PREFACE + headers(1, hpack.Encoder().encode(REQ), "END_HEADERS",
                                             "END_STREAM"), 1)  # fmt: skip
    parser.feed("response", DataFrame(1, data=b"abc", flags=["END_STREAM"]).serialize(), 7)
    _, resp = parser.events()
    assert isinstance(resp, Http2Response)
    assert (resp.ts_ns, resp.status, resp.body_size) == (7, None, 3)
    assert resp.outcome is Status.UNKNOWN


def test_a_reset_before_any_response_is_a_server_error_timed_at_the_reset() -> None:
    parser, pairer = Http2Parser(), Pairer()
    parser.feed("request", PREFACE + headers(1, hpack.Encoder().encode(REQ), "END_HEADERS",
                                             "END_STREAM"), 1)  # fmt: skip
    parser.feed("response", RstStreamFrame(7, error_code=8).serialize(), 5)  # unknown stream
    parser.feed("response", RstStreamFrame(1, error_code=8).serialize(), 6)  # CANCEL
    (record,) = [r for e in parser.events() for r in pairer.add(e)]
    assert record.response is not None
    assert (record.response.stream_id, record.response.status, record.response.reset_code,
            record.response.ts_ns) == (1, None, 8, 6)  # fmt: skip
    assert record.status is Status.SERVER_ERROR and record.latency_ns == 5


def test_a_reset_with_no_error_and_no_status_has_an_unknown_outcome() -> None:
    resp = Http2Response(ts_ns=0, stream_id=1, status=None, reset_code=0)
    assert resp.outcome is Status.UNKNOWN


def test_responses_cut_by_the_end_of_the_connection_come_out_with_an_error() -> None:
    encoder = hpack.Encoder()
    response = headers(1, encoder.encode(OK), "END_HEADERS") + headers(
        3, encoder.encode([(":status", "503")]), "END_HEADERS")
    evs = events(response=response, end=True)
    assert [(m.stream_id, m.status, m.errors) for m in messages(evs)] == [
        (1, 200, ("connection ended before END_STREAM",)),
        (3, 503, ("connection ended before END_STREAM",))]


def test_the_oldest_stream_is_forgotten_beyond_the_stream_bound() -> None:
    encoder = hpack.Encoder()
    opened = b"".join(headers(1 + 2 * i, encoder.encode(REQ), "END_HEADERS", "END_STREAM")
                      for i in range(MAX_H2_STREAMS + 1))  # fmt: skip
    resets = b"".join(RstStreamFrame(sid, error_code=2).serialize() for sid in (1, 3))
    evs = events(PREFACE + opened, resets)
    assert len([m for m in evs if isinstance(m, Http2Request)]) == MAX_H2_STREAMS + 1
    # stream 1 was dropped from the table, so its reset ends nothing; stream 3's ends it
    assert [(m.stream_id, m.reset_code) for m in evs if isinstance(m, Http2Response)] == [(3, 2)]


# -- resynchronisation and the signature ---------------------------------------------------
def test_resync_skips_a_frame_header_whose_successor_is_implausible() -> None:
    """Mid-connection, nine bytes that read as an empty SETTINGS ACK are not taken
    as a frame start when the nine after them cannot be a frame header (zeros: a
    DATA frame on stream 0)."""
    fake = SettingsFrame(0, flags=["ACK"]).serialize()
    real = headers(1, hpack.Encoder().encode(REQ), "END_HEADERS", "END_STREAM")
    assert plausible_frame_header(fake) and not plausible_frame_header(bytes(9))
    evs = events(fake + bytes(9) + real, mid=True)
    assert [(type(e), e.path) for e in evs] == [(Http2Request, "/a")]


def test_fewer_than_nine_bytes_are_no_frame_header() -> None:
    assert not plausible_frame_header(SettingsFrame(0).serialize()[:8])


def _headers_frame(payload: bytes, flags: int = 0x04) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([1, flags]) + (1).to_bytes(4, "big") + payload


@pytest.mark.parametrize(("payload", "flags", "expected"), [
    # literal without indexing, name :path (static index 4): a request
    (b"\x04\x01/", 0x04, (0.6, Direction.REQUEST)),
    # literal never indexed, name :status (static index 8): a response
    (b"\x18\x03200", 0x04, (0.6, Direction.RESPONSE)),
    # a dynamic table size update first: the sender is not told, the frame too short alone
    (b"\x20\x82", 0x04, (0.25, None)),
    # PADDED, the pad length its only byte: no field to read
    (b"\x00", 0x0C, (0.25, None)),
])  # fmt: skip
def test_the_signature_reads_the_first_field_of_a_header_block(
        payload: bytes, flags: int, expected: tuple) -> None:  # fmt: skip
    confidence, direction = SPEC.signature(_headers_frame(payload, flags), False)
    assert (confidence, direction) == (pytest.approx(expected[0]), expected[1])


def test_the_frame_after_a_stray_continuation_is_not_lost() -> None:
    stray = ContinuationFrame(1, data=b"\x82\x84", flags=["END_HEADERS"]).serialize()
    block = hpack.Encoder().encode(REQ)
    evs = events(PREFACE + stray + headers(3, block, "END_HEADERS", "END_STREAM"))
    assert reasons(evs) == ["MalformedError: CONTINUATION without a header block"]
    assert [(m.stream_id, m.path) for m in messages(evs)] == [(3, "/a")]


def test_a_response_counts_its_own_header_bytes_not_the_request_s() -> None:
    client, server = _client_server()
    client.send_headers(1, REQ, end_stream=True)
    request = client.data_to_send()
    server.receive_data(request)
    server.data_to_send()  # the server's SETTINGS: not part of the stream
    server.send_headers(1, OK)
    response_headers = server.data_to_send()
    server.send_data(1, b"abc", end_stream=True)
    response = response_headers + server.data_to_send()
    (resp,) = [m for m in messages(events(request, response)) if isinstance(m, Http2Response)]
    assert resp.size == len(response)  # one HEADERS frame and one DATA frame

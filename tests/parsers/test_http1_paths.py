"""HTTP/1 paths the cases table does not take: malformed heads and chunked bodies,
the head and trailer bounds, folded headers, gaps on either side, and a response
that comes while its request line is still incomplete."""

from __future__ import annotations

import pytest

from libtrace.parsers import Desync, Direction, Http1Parser, Http1Request, Http1Response, Status
from libtrace.parsers._http1 import SPEC
from libtrace.parsers._limits import MAX_HEADERS, MAX_HTTP_HEAD_BYTES

from ._harness import assert_split_invariant, fed_whole, messages, reasons

CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def events(request: bytes = b"", response: bytes = b"", *, end: bool = False) -> list:
    return fed_whole(Http1Parser(), request, response, end=end)


def test_a_folded_header_line_continues_the_previous_value() -> None:
    request = b"GET / HTTP/1.1\r\nX-Long: first\r\n  second\r\n\tthird\r\nHost: h\r\n\r\n"
    (req,) = assert_split_invariant(Http1Parser, request, b"", [3, 20, 31, 40])
    assert isinstance(req, Http1Request)
    assert req.headers == (("x-long", "first second third"), ("host", "h")) and req.host == "h"


def test_a_header_line_without_a_colon_is_a_desync_and_the_next_request_parses() -> None:
    evs = events(b"GET /a HTTP/1.1\r\nno colon here\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
    assert reasons(evs) == ["MalformedError: invalid header line b'no colon here'"]
    assert [m.path for m in messages(evs)] == ["/b"]


def test_more_header_lines_than_the_bound_is_a_desync() -> None:
    head = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
    evs = events(head + b"\r\n")
    assert reasons(evs) == [f"LimitExceededError: more than {MAX_HEADERS} header fields"]
    assert not messages(evs)


def test_conflicting_content_lengths_are_a_desync() -> None:
    evs = events(response=b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
    assert reasons(evs) == ["MalformedError: invalid Content-Length ['1', '2']"]
    assert not messages(evs)


def test_a_head_beyond_the_bound_is_a_desync_before_its_end_arrives() -> None:
    head = b"GET / HTTP/1.1\r\nX-Big: " + b"a" * (MAX_HTTP_HEAD_BYTES + 10)
    assert reasons(events(head)) == [
        f"LimitExceededError: head larger than {MAX_HTTP_HEAD_BYTES} bytes"]


@pytest.mark.parametrize(("direction", "head", "reason"), [
    ("request", b"GET /a HTTP/2.0\r\n\r\n", "invalid request line b'GET /a HTTP/2.0'"),
    ("request", b"GET  HTTP/1.1\r\n\r\n", "invalid request line b'GET  HTTP/1.1'"),
    ("response", b"HTTP/1.1 999 Nope\r\n\r\n", "invalid status line b'HTTP/1.1 999 Nope'"),
])  # fmt: skip
def test_a_first_line_that_only_starts_right_is_a_desync(direction: str, head: bytes,
                                                         reason: str) -> None:  # fmt: skip
    evs = events(**{direction: head})
    assert reasons(evs) == [f"MalformedError: {reason}"]
    assert not messages(evs)


@pytest.mark.parametrize(("body", "reason"), [
    (b"a" * 1100, "MalformedError: chunk-size line too long"),
    (b"zz\r\n", "MalformedError: invalid chunk size b'zz'"),
    (b"-5\r\nabcde\r\n", "MalformedError: negative chunk size"),
    (b"3\r\nabcXY", "MalformedError: chunk data not followed by CRLF"),
    (b"0\r\nX-T: " + b"a" * (MAX_HTTP_HEAD_BYTES + 10),
     "LimitExceededError: trailer section too large"),
])  # fmt: skip
def test_a_malformed_chunked_body_is_a_desync(body: bytes, reason: str) -> None:
    evs = events(response=CHUNKED + body)
    assert reasons(evs) == [reason]
    assert not messages(evs)  # the response is emitted only when its body ends


def test_a_stream_ending_inside_a_chunk_gives_the_response_with_the_bytes_missing() -> None:
    (resp,) = events(response=CHUNKED + b"5\r\nab", end=True)
    assert isinstance(resp, Http1Response)
    assert (resp.status, resp.body_size, resp.errors) == (
        200, 5, ("stream ended with 3 body bytes missing",))


def test_blank_lines_between_messages_are_no_message_and_no_desync() -> None:
    parser = Http1Parser()
    parser.feed("request", b"\r\n\r\n", 1)
    assert parser.events() == []
    parser.feed("request", b"\r\nGET / HTTP/1.1\r\n\r\n", 2)
    assert [(type(e), e.path, e.ts_ns) for e in parser.events()] == [(Http1Request, "/", 2)]


def test_a_response_before_the_request_line_is_whole_does_not_cut_the_request() -> None:
    """Only a head whose request line is complete can come out partial: with
    "GET /a HT" buffered, the response goes out alone and the request follows whole."""
    parser = Http1Parser()
    parser.feed("request", b"GET /a HT", 1)
    parser.feed("response", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2)
    assert [(type(e), e.status) for e in parser.events()] == [(Http1Response, 200)]
    parser.feed("request", b"TP/1.1\r\n\r\n", 3)
    (req,) = parser.events()
    assert isinstance(req, Http1Request) and (req.path, req.errors) == ("/a", ())


def test_a_gap_in_a_response_keeps_nothing_of_it() -> None:
    parser = Http1Parser()
    parser.feed("request", b"GET / HTTP/1.1\r\n\r\n", 1)
    parser.feed("response", b"HTTP/1.1 200 OK\r\nContent-", 2)
    parser.feed_gap("response", 30, 3)
    req, desync = parser.events()
    assert isinstance(req, Http1Request)
    assert desync == Desync(direction=Direction.RESPONSE, ts_ns=3, reason="30 bytes missing")


def test_a_gap_inside_a_chunked_request_body_loses_the_request() -> None:
    """The head was parsed, but a request is emitted when its body ends: a hole
    in the chunks leaves nothing to keep (no partial, order not kept)."""
    parser = Http1Parser()
    parser.feed("request", b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 1)
    assert parser.events() == []
    parser.feed_gap("request", 10, 2)
    assert parser.events() == [Desync(direction=Direction.REQUEST, ts_ns=2,
                                      reason="10 bytes missing")]  # fmt: skip


def test_a_gap_inside_a_length_body_is_stepped_over() -> None:
    """The hole falls in bytes the parser skips anyway: no desync, the request whole."""
    parser = Http1Parser()
    parser.feed("request", b"POST /p HTTP/1.1\r\nContent-Length: 10\r\n\r\nab", 1)
    assert parser.events() == []  # the head parsed: 8 body bytes still to skip
    parser.feed_gap("request", 5, 2)
    parser.feed("request", b"cde", 3)
    (req,) = parser.events()
    assert isinstance(req, Http1Request) and (req.path, req.body_size, req.errors) == ("/p", 10, ())


def test_a_user_built_response_with_a_valid_status_is_accepted() -> None:
    resp = Http1Response(ts_ns=0, status=204, version="1.1")
    assert resp.outcome is Status.OK and resp.fields()["status"] == 204


def test_the_signature_takes_a_request_line_cut_short_as_a_weak_request() -> None:
    assert SPEC.signature(b"GET /index.ht", False) == (0.6, Direction.REQUEST)


def test_a_gap_after_a_whole_unread_head_is_a_desync_not_an_exception() -> None:
    # The cut message's partial reading meets the head's blank line: what it
    # cannot read is not kept, and nothing escapes feed_gap.
    parser = Http1Parser()
    parser.feed("request", b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1)
    parser.feed_gap("request", 10, 2)
    assert reasons(parser.events()) == ["10 bytes missing"]


def test_a_stream_ending_inside_a_bad_head_is_a_desync_not_an_exception() -> None:
    parser = Http1Parser()
    parser.feed("request", b"GET / HTTP/1.1\r\nbad line\r\nX", 1)
    parser.feed("request", b"", 2)
    evs = parser.events()
    assert reasons(evs) and not messages(evs)

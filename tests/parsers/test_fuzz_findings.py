"""Inputs ``tox -e fuzz-deep`` found, cut down by hand, each kept with the fix it led to."""

from __future__ import annotations

from libtrace.parsers import Http1Parser, Http1Response

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

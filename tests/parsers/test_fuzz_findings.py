"""Inputs ``tox -e fuzz-deep`` found, cut down by hand, each kept with the fix it led to."""

from __future__ import annotations

import pytest

from libtrace.parsers import Http1Parser, Http1Response, Http2Parser, _http2
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

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libtrace.parsers import Desync, Http1Parser, Http1Request, Http1Response, Pairer, Status

from ._harness import MODES, assert_split_invariant, feed_chunks, messages, run, summary

# name, request bytes, response bytes, expected (method, path, status, body sizes)
CASES = [
    ("get", b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
     [("GET", "/a", "x", None, 0), (None, None, None, 200, 2)]),
    ("post-length", b"POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
     b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
     [("POST", "/p", None, None, 3), (None, None, None, 201, 0)]),
    ("chunked-both", b"PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
     b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n",
     [("PUT", "/c", None, None, 2), (None, None, None, 500, 3)]),
    ("head-no-body", b"HEAD / HTTP/1.1\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n",
     [("HEAD", "/", None, None, 0), (None, None, None, 200, 0)]),
    ("interim-100", b"POST /u HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz",
     b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
     [("POST", "/u", None, None, 1), (None, None, None, 204, 0)]),
    ("304", b"GET /n HTTP/1.1\r\nIf-None-Match: x\r\n\r\n",
     b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
     [("GET", "/n", None, None, 0), (None, None, None, 304, 0)]),
    ("pipelined", b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nAHTTP/1.1 404 NF\r\nContent-Length: 1\r\n\r\nB",
     [("GET", "/1", None, None, 0), ("GET", "/2", None, None, 0),
      (None, None, None, 200, 1), (None, None, None, 404, 1)]),
]
KEYS = ("method", "path", "host", "status", "body_size")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "request_bytes", "response_bytes", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_cases(name: str, request_bytes: bytes, response_bytes: bytes, expected: list,
               mode: str) -> None:
    events = run(Http1Parser, request_bytes, response_bytes, mode)
    assert summary(events, KEYS) == [dict(zip(KEYS, e, strict=True)) for e in expected]
    if mode != "junk":
        assert not [e for e in events if isinstance(e, Desync)]


def test_response_until_close() -> None:
    p = Http1Parser()
    p.feed("request", b"GET / HTTP/1.0\r\n\r\n", 1)
    p.feed("response", b"HTTP/1.0 200 OK\r\n\r\nbody until close", 2)
    assert messages(p.events()) == [Http1Request(ts_ns=1, size=18, method="GET", path="/",
                                                 version="1.0")]
    p.feed("response", b"", 3)
    (resp,) = messages(p.events())
    assert isinstance(resp, Http1Response) and resp.status == 200


def test_truncated_body_is_reported() -> None:
    p = Http1Parser()
    p.feed("response", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 1)
    p.feed("response", b"", 2)
    (resp,) = messages(p.events())
    assert resp.errors and "7 body bytes missing" in resp.errors[0]


def test_mid_stream_resync() -> None:
    p = Http1Parser(mid_stream=True)
    p.feed("request", b"dy of an earlier POST\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n", 1)
    p.feed("response", b"tail\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2)
    msgs = messages(p.events())
    assert [type(m) for m in msgs] == [Http1Request, Http1Response]
    assert msgs[0].fields()["path"] == "/x"


def test_upgrade_makes_connection_opaque() -> None:
    p = Http1Parser()
    p.feed("request", b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", 1)
    events = p.events()
    p.feed("response", b"HTTP/1.1 101 Switching Protocols\r\n\r\n\x81\x02hi", 2)
    events += p.events()
    p.feed("request", b"\x81\x05hello", 3)
    events += p.events()
    assert [type(e) for e in events] == [Http1Request, Http1Response]


def test_gap_resyncs() -> None:
    p = Http1Parser()
    p.feed("request", b"GET /a HTTP/1.1\r\nHo", 1)
    p.feed_gap("request", 100, 2)
    p.feed("request", b"st: x\r\n\r\nGET /b HTTP/1.1\r\n\r\n", 3)
    events = p.events()
    # The cut request keeps its line (partial), then the desync, then the next request.
    assert isinstance(events[0], Http1Request) and events[0].errors
    assert isinstance(events[1], Desync) and events[1].kept_order
    assert [m.fields()["path"] for m in messages(events)] == ["/a", "/b"]


def test_pairing_statuses() -> None:
    p, pairer = Http1Parser(), Pairer()
    p.feed("request", b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\nGET /c HTTP/1.1\r\n\r\n", 10)
    p.feed("response", b"HTTP/1.1 404 NF\r\nContent-Length: 0\r\n\r\n"
                       b"HTTP/1.1 503 U\r\nContent-Length: 0\r\n\r\n", 30)
    records = [r for e in p.events() for r in pairer.add(e)] + pairer.flush()
    assert [(r.status, r.latency_ns) for r in records] == [
        (Status.CLIENT_ERROR, 20), (Status.SERVER_ERROR, 20), (Status.UNKNOWN, None)]


def test_message_validation() -> None:
    with pytest.raises(ValueError):
        Http1Response(ts_ns=0, status=99, version="1.1")
    with pytest.raises(ValueError):
        Http1Request(ts_ns=0, method="G T", path="/", version="1.1")


@pytest.mark.fuzz
@given(st.binary(max_size=300), st.binary(max_size=300), st.lists(st.integers(0, 400),
                                                                    max_size=8),
       st.booleans())
def test_fuzz_arbitrary_bytes(req: bytes, resp: bytes, cuts: list[int], mid: bool) -> None:
    assert_split_invariant(lambda: Http1Parser(mid_stream=mid), req, resp, cuts)


@pytest.mark.fuzz
@given(st.sampled_from(CASES), st.lists(st.integers(0, 200), max_size=6))
def test_fuzz_valid_messages_any_split(case: tuple, cuts: list[int]) -> None:
    _, req, resp, expected = case
    p = Http1Parser()
    events = feed_chunks(p, "request", req, cuts) + feed_chunks(p, "response", resp, cuts)
    assert len(messages(events)) == len(expected)


@pytest.mark.fuzz
@given(st.integers(0, 10**12))
def test_fuzz_huge_content_length_buffers_nothing(length: int) -> None:
    p = Http1Parser()
    p.feed("request", f"POST / HTTP/1.1\r\nContent-Length: {length}\r\n\r\n".encode(), 1)
    p.feed("request", b"x" * 10000, 2)
    p.events()
    assert len(p._sides["request"].buf) <= 10000


def _http1_records(feeds: list[tuple[str, bytes | int, int]]) -> list:
    parser, pairer = Http1Parser(), Pairer()
    records = []
    for direction, data, ts in feeds:
        if isinstance(data, int):
            parser.feed_gap(direction, data, ts)
        else:  # b"" ends the direction
            parser.feed(direction, data, ts)
        records += [r for e in parser.events() for r in pairer.add(e)]
    return records + pairer.flush()


def test_a_request_whose_head_a_gap_cut_keeps_its_line_and_pairs_with_its_response() -> None:
    records = _http1_records([
        ("request", b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n", 1),
        ("request", b"GET /cut HTTP/1.1\r\nHost: b\r\nUser-Ag", 2),
        ("request", 500, 3),  # the rest of its head, lost
        ("request", b"GET /third HTTP/1.1\r\n\r\n", 4),
        ("response", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" * 2, 5),
        ("response", b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 6),
    ])  # fmt: skip
    pairs = [(r.request.path, r.request.host, r.response.status if r.response else None,
              r.request.errors) for r in records]  # fmt: skip
    assert pairs == [
        ("/first", "a", 200, ()),
        ("/cut", "b", 200, ("partial: the header block was cut",)),
        ("/third", None, 404, ()),
    ]


def test_a_request_cut_by_the_end_of_the_capture_keeps_its_line() -> None:
    records = _http1_records([("request", b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Ty", 1),
                              ("request", b"", 2)])  # fmt: skip
    (record,) = records
    assert (record.request.method, record.request.path, record.request.host) == ("POST", "/up", "h")
    assert record.request.errors == ("partial: the header block was cut",)
    assert record.status is Status.UNKNOWN and record.response is None


def test_a_response_to_a_head_whose_rest_is_still_missing_pairs_with_its_line() -> None:
    """Capture order: the head's first part, its response, and only later the hole (a
    pcap's lost segment is known at the close): the response tells that head ended."""
    records = _http1_records([
        ("request", b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n", 1),
        ("response", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2),
        ("request", b"GET /missing HTTP/1.1\r\nHost: b\r\nUser-Ag", 3),
        ("response", b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 4),
        ("request", 40, 5),  # the rest of that head, lost
        ("request", b"GET /after HTTP/1.1\r\n\r\n", 6),
        ("response", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 7),
    ])  # fmt: skip
    assert [(r.request.path, r.response.status, r.request.errors) for r in records] == [
        ("/first", 200, ()),
        ("/missing", 404, ("partial: the header block was cut",)),
        ("/after", 200, ()),
    ]


def test_an_answer_to_an_earlier_request_does_not_cut_the_next_head() -> None:
    """Pipelined: the second head is split across segments and the first request's
    response arrives in between; the second head is whole once its rest comes."""
    records = _http1_records([
        ("request", b"GET /one HTTP/1.1\r\n\r\nGET /two HTTP/1.1\r\nHo", 1),
        ("response", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 2),
        ("request", b"st: b\r\n\r\n", 3),
        ("response", b"HTTP/1.1 204 No Content\r\n\r\n", 4),
    ])  # fmt: skip
    assert [(r.request.path, r.request.host, r.response.status, r.request.errors)
            for r in records] == [("/one", None, 200, ()), ("/two", "b", 204, ())]

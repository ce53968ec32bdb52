from __future__ import annotations

import h2.config
import h2.connection
import pytest
from hypothesis import given
from hypothesis import strategies as st

from libtrace.parsers import Desync, Http2Parser, Http2Request, Http2Response, Pairer, Status

from ._harness import MODES, assert_split_invariant, feed_chunks, messages, run

REQ = [(":method", "GET"), (":path", "/a"), (":authority", "svc"), (":scheme", "http"),
       ("x-custom", "one")]


def _conversation(streams: list[tuple[list, list, list | None, bytes]]) -> tuple[bytes, bytes]:
    """Encode with h2: (request headers, response headers, trailers, body) per stream."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    for i, (req, _, _, _) in enumerate(streams):
        client.send_headers(1 + 2 * i, req, end_stream=True)
    request = client.data_to_send()
    server.receive_data(request)
    for i, (_, resp, trailers, body) in enumerate(streams):
        sid = 1 + 2 * i
        server.send_headers(sid, resp, end_stream=not body and trailers is None)
        if body:
            server.send_data(sid, body, end_stream=trailers is None)
        if trailers is not None:
            server.send_headers(sid, trailers, end_stream=True)
    return request, server.data_to_send()


CASES = [
    ("simple", [(REQ, [(":status", "200")], None, b"hello")], [(1, "GET", "/a", 200, None)]),
    ("grpc-trailers", [(
        [(":method", "POST"), (":path", "/pkg.Svc/Call"), (":authority", "svc"),
         (":scheme", "http"), ("content-type", "application/grpc")],
        [(":status", "200"), ("content-type", "application/grpc")],
        [("grpc-status", "14"), ("grpc-message", "unavailable")], b"\x00\x00\x00\x00\x00")],
        [(1, "POST", "/pkg.Svc/Call", 200, 14)]),
    ("multiplexed", [(REQ, [(":status", "404")], None, b"x"),
                     (REQ, [(":status", "500")], None, b""),
                     (REQ, [(":status", "200")], None, b"y" * 15000)],
     [(1, "GET", "/a", 404, None), (3, "GET", "/a", 500, None), (5, "GET", "/a", 200, None)]),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "streams", "expected"), CASES, ids=[c[0] for c in CASES])
def test_cases(name: str, streams: list, expected: list, mode: str) -> None:
    request, response = _conversation(streams)
    events = run(Http2Parser, request, response, mode)
    requests = [m for m in messages(events) if isinstance(m, Http2Request)]
    responses = {m.stream_id: m for m in messages(events) if isinstance(m, Http2Response)}
    assert [(r.stream_id, r.method, r.path) for r in requests] == [e[:3] for e in expected]
    assert [(responses[e[0]].status, responses[e[0]].grpc_status) for e in expected] == [
        e[3:] for e in expected]
    if mode != "junk":
        assert not [e for e in events if isinstance(e, Desync)]


def test_grpc_status_classifies() -> None:
    request, response = _conversation(CASES[1][1])
    p, pairer = Http2Parser(), Pairer()
    p.feed("request", request, 1)
    p.feed("response", response, 2)
    (record,) = [r for e in p.events() for r in pairer.add(e)]
    assert record.status is Status.SERVER_ERROR
    assert record.to_dict()["response"]["grpc_status"] == 14


def test_mid_stream_unknown_dynamic_table_gives_partial_headers() -> None:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.send_headers(1, REQ, end_stream=True)
    client.data_to_send()  # the capture misses the start: table entries unknown
    client.send_headers(3, REQ, end_stream=True)
    later = client.data_to_send()
    p = Http2Parser(mid_stream=True)
    p.feed("request", b"\x17tail of an earlier frame" + later, 1)
    (req,) = messages(p.events())
    assert isinstance(req, Http2Request) and req.stream_id == 3
    assert req.method == "GET"  # static-table entries still decode; :path was indexed
    assert req.errors and "unknown HPACK dynamic table index" in req.errors[0]


def test_rst_stream_ends_a_stream() -> None:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    client.send_headers(1, REQ, end_stream=True)
    request = client.data_to_send()
    server.receive_data(request)
    server.send_headers(1, [(":status", "200")])
    server.reset_stream(1, error_code=2)
    p = Http2Parser()
    p.feed("request", request, 1)
    p.feed("response", server.data_to_send(), 2)
    resp = messages(p.events())[-1]
    assert isinstance(resp, Http2Response) and resp.reset_code == 2


@pytest.mark.fuzz
@given(st.binary(max_size=400), st.binary(max_size=400), st.lists(st.integers(0, 500),
                                                                    max_size=8),
       st.booleans())
def test_fuzz_arbitrary_bytes(req: bytes, resp: bytes, cuts: list[int], mid: bool) -> None:
    assert_split_invariant(lambda: Http2Parser(mid_stream=mid),
                           b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + req, resp, cuts)  # fmt: skip


@pytest.mark.fuzz
@given(st.lists(st.tuples(st.sampled_from(["GET", "POST"]), st.text("abc/", min_size=1,
                                                                    max_size=20),
                          st.sampled_from(["200", "404", "503"])), min_size=1, max_size=5),
       st.lists(st.integers(0, 2000), max_size=6))
def test_fuzz_generated_roundtrip(streams: list, cuts: list[int]) -> None:
    spec = [([(":method", m), (":path", "/" + path), (":authority", "a"), (":scheme", "http")],
             [(":status", status)], None, b"") for m, path, status in streams]
    request, response = _conversation(spec)
    p = Http2Parser()
    events = feed_chunks(p, "request", request, cuts) + feed_chunks(p, "response", response, cuts)
    reqs = [m for m in messages(events) if isinstance(m, Http2Request)]
    resps = [m for m in messages(events) if isinstance(m, Http2Response)]
    assert [(r.method, r.path) for r in reqs] == [(m, "/" + path) for m, path, _ in streams]
    assert [r.status for r in resps] == [int(s) for _, _, s in streams]

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libtrace.parsers import (
    Cursor,
    Desync,
    DubboParser,
    DubboRequest,
    DubboResponse,
    LimitExceededError,
    MalformedError,
    Pairer,
    Status,
    TruncatedError,
)
from libtrace.parsers._dubbo import MAX_BODY_PREFIX_BYTES
from libtrace.parsers.hessian2 import encode_int, encode_string, read_int, read_string

from ._harness import MODES, assert_split_invariant, feed_chunks, messages, run, summary


def frame(flags: int, status: int, request_id: int, body: bytes) -> bytes:
    return (b"\xda\xbb" + bytes([flags, status]) + request_id.to_bytes(8, "big")
            + len(body).to_bytes(4, "big") + body)


def request(rid: int, service: str = "org.demo.Greeter", method: str = "hello",
            version: str | None = "1.0.0", two_way: bool = True, args: bytes = b"") -> bytes:
    body = b"".join(encode_string(x) for x in ("2.0.2", service, version, method,
                                                "Ljava/lang/String;")) + args
    return frame(0x80 | (0x40 if two_way else 0) | 2, 0, rid, body)


def response(rid: int, status: int = 20, body: bytes | None = None) -> bytes:
    if body is None:
        body = encode_int(1) + encode_string("ok") if status == 20 else encode_string("bad")
    return frame(0x02, status, rid, body)


HEARTBEAT, HEARTBEAT_ACK = frame(0xE2, 0, 9, b"N"), frame(0x22, 20, 9, b"N")
KEYS = ("request_id", "service", "method", "version", "status", "result", "heartbeat")


def row(rid: int, **kw: object) -> dict:
    return {k: kw.get(k) for k in KEYS} | {"request_id": rid}


REQ = {"service": "org.demo.Greeter", "method": "hello", "version": "1.0.0", "heartbeat": False}
CASES = [
    ("ok", request(1), response(1), [row(1, **REQ), row(1, status="OK", result="value")]),
    ("not-found", request(2), response(2, 60),
     [row(2, **REQ), row(2, status="SERVICE_NOT_FOUND")]),
    ("exception", request(3), response(3, 20, encode_int(0) + encode_string("boom")),
     [row(3, **REQ), row(3, status="OK", result="exception")]),
    ("null-version", request(4, version=None, method="m" * 40), response(4, 20, encode_int(2)),
     [row(4, **{**REQ, "version": None, "method": "m" * 40}),
      row(4, status="OK", result="null")]),
    ("heartbeat", HEARTBEAT, HEARTBEAT_ACK,
     [row(9, heartbeat=True), row(9, status="OK")]),
    ("pipelined", request(5) + request(6, two_way=False) + request(7), response(7) + response(5),
     [row(5, **REQ), row(6, **REQ), row(7, **REQ), row(7, status="OK", result="value"),
      row(5, status="OK", result="value")]),
    ("server-timeout", request(8), response(8, 31),
     [row(8, **REQ), row(8, status="SERVER_TIMEOUT")]),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "request_bytes", "response_bytes", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_cases(name: str, request_bytes: bytes, response_bytes: bytes, expected: list,
               mode: str) -> None:
    events = run(DubboParser, request_bytes, response_bytes, mode)
    assert summary(events, KEYS) == expected
    if mode != "junk":
        assert not [e for e in events if isinstance(e, Desync)]


def _records(*chunks: tuple[str, bytes]) -> list:
    parser, pairer, out = DubboParser(), Pairer(), []
    for i, (direction, data) in enumerate(chunks):
        parser.feed(direction, data, ts_ns=i)
        for event in parser.events():
            out += pairer.add(event)
    return out + pairer.flush()


@pytest.mark.parametrize(("status", "outcome"), [
    (20, Status.OK), (30, Status.CLIENT_ERROR), (31, Status.SERVER_ERROR),
    (40, Status.CLIENT_ERROR), (50, Status.SERVER_ERROR), (60, Status.CLIENT_ERROR),
    (70, Status.SERVER_ERROR), (80, Status.SERVER_ERROR), (90, Status.CLIENT_ERROR),
])
def test_status_mapping(status: int, outcome: Status) -> None:
    (record,) = _records(("request", request(1)), ("response", response(1, status)))
    assert record.status is outcome and record.latency_ns == 1


def test_one_way_and_server_heartbeat_pairing() -> None:
    records = _records(("request", request(1, two_way=False)),
                       ("response", frame(0xE2, 0, 1, b"N")),   # the server's heartbeat, id 1
                       ("request", frame(0x22, 20, 1, b"N")))   # the client's answer
    assert [(r.request.sender, r.response and r.response.sender) for r in records] == [
        ("client", None), ("server", "client")]


def test_large_body_is_skipped() -> None:
    big = encode_string("x" * 60000) * 4
    p = DubboParser()
    wire, events = request(1, args=big) + request(2), []
    for i in range(0, len(wire), 4096):
        p.feed("request", wire[i:i + 4096], i)
        events += p.events()
        assert len(p._sides["request"].buf) <= MAX_BODY_PREFIX_BYTES + 16 + 4096
    got = [(m.request_id, m.method, m.size) for m in messages(events)]
    assert got == [(1, "hello", len(request(1, args=big))), (2, "hello", len(request(2)))]


def test_undecodable_body_keeps_header() -> None:
    p = DubboParser()
    p.feed("request", frame(0xC2, 0, 1, b"\x05ab") + frame(0xC9, 0, 2, b"\x01fst"), 1)
    p.feed("response", frame(0x02, 20, 1, b"Z"), 2)
    one, two, resp = messages(p.events())
    assert one.request_id == 1 and one.service is None and "TruncatedError" in one.errors[0]
    assert two.serialization == 9 and two.errors == ("serialization 9 (fst) not decoded",)
    assert isinstance(resp, DubboResponse) and "MalformedError" in resp.errors[0]


def test_response_body_variants() -> None:
    p = DubboParser()
    p.feed("response", frame(0x09, 20, 1, b"{}") + response(2, 20, encode_int(9)), 1)
    other, unknown = messages(p.events())
    assert other.errors == ("serialization 9 (fst) not decoded",) and other.result is None
    assert unknown.errors == ("unknown response type 9",)


def test_hessian_long_strings_are_chunked() -> None:
    text = "é" * 70000 + "\U0001f600" * 10
    wire = encode_string(text)
    assert wire[:1] == b"R"
    value = read_string(Cursor(wire))
    assert value is not None and value.startswith("éé") and len(value) == 512


@pytest.mark.parametrize("bad", [
    b"\xda\xbc" + bytes(14),                       # wrong magic
    frame(0xC1, 0, 1, b""),                        # serialization 1 does not exist
    frame(0x02, 77, 1, b""),                       # unknown response status
    b"\xda\xbb\xc2\x00" + bytes(8) + b"\x7f\xff\xff\xff",  # 2 GiB body
])
def test_bad_headers_desync_and_resync(bad: bytes) -> None:
    p = DubboParser()
    p.feed("request", bad + request(3), 1)
    events = p.events()
    assert isinstance(events[0], Desync)
    assert [m.request_id for m in messages(events)] == [3]


def test_mid_stream_resync() -> None:
    p = DubboParser(mid_stream=True)
    p.feed("request", b"tail\xda" + request(4) + request(5), 1)
    assert [m.request_id for m in messages(p.events())] == [4, 5]


# -- hessian2: the specification's examples ---------------------------------------------------
@pytest.mark.parametrize(("wire", "value"), [
    (b"\x00", ""), (b"\x05hello", "hello"), (b"\x01\xc3\x83", "\u00c3"),
    (b"\x30\x20" + b"a" * 32, "a" * 32), (b"R\x00\x02abS\x00\x01c", "abc"), (b"N", None),
    (b"\x02\xf0\x9f\x98\x80", "\U0001f600"),  # one character, two UTF-16 units
])
def test_hessian_strings(wire: bytes, value: str | None) -> None:
    cur = Cursor(wire)
    assert read_string(cur) == value and cur.remaining == 0
    assert encode_string(value) == wire or wire.startswith(b"R")


@pytest.mark.parametrize(("wire", "value"), [
    (b"\x90", 0), (b"\x80", -16), (b"\xbf", 47), (b"\xc8\x30", 48), (b"\xc0\x00", -2048),
    (b"\xd4\x08\x00", 2048), (b"I\x7f\xff\xff\xff", 2**31 - 1),
])
def test_hessian_ints(wire: bytes, value: int) -> None:
    assert read_int(Cursor(wire)) == value and encode_int(value) == wire


@pytest.mark.parametrize("wire", [b"\x05hel", b"R\x00\x01a", b"\x03\xff\xfe\xfd", b"T", b"",
                                  b"R\x00\x00" * 70])
def test_hessian_bad_strings(wire: bytes) -> None:
    with pytest.raises((TruncatedError, MalformedError, LimitExceededError)):
        read_string(Cursor(wire))


@pytest.mark.fuzz
@given(st.binary(max_size=300), st.binary(max_size=300),
       st.lists(st.integers(0, 400), max_size=8), st.booleans())
def test_fuzz_arbitrary_bytes(req: bytes, resp: bytes, cuts: list[int], mid: bool) -> None:
    assert_split_invariant(lambda: DubboParser(mid_stream=mid), req, b"\xda\xbb" + resp, cuts)


@pytest.mark.fuzz
@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.text(max_size=40),
                          st.text(min_size=1, max_size=40), st.one_of(st.none(), st.text())),
                min_size=1, max_size=5), st.lists(st.integers(0, 3000), max_size=6))
def test_fuzz_generated_requests_roundtrip(calls: list, cuts: list[int]) -> None:
    wire = b"".join(request(rid, svc, method, version) for rid, svc, method, version in calls)
    events = feed_chunks(DubboParser(), "request", wire, cuts)
    got = [(m.request_id, m.service, m.method, m.version) for m in messages(events)
           if isinstance(m, DubboRequest)]
    clip = [(r, s[:512], m[:512], v if v is None or len(v) <= 512 else v[:511] + "…")
            for r, s, m, v in calls]
    assert got == clip


@pytest.mark.fuzz
@given(st.binary(max_size=200))
def test_fuzz_hessian_never_escapes(data: bytes) -> None:
    """Only the documented errors escape, and a string read does not depend on what
    follows it: the same bytes with a tail read the same, to the same offset."""
    cur = Cursor(data)
    try:
        value = read_string(cur)
    except (TruncatedError, MalformedError, LimitExceededError):
        return
    after = Cursor(data + b"tail")
    assert (read_string(after), after.pos) == (value, cur.pos)


@pytest.mark.parametrize("serialization", [6, 16], ids=["fastjson", "gson"])
def test_json_serializations_give_service_method_and_result(serialization: int) -> None:
    """FastJson's and Gson's ObjectOutput write each object as a line of JSON (a
    generator built from that format here: no Java peer is at hand)."""
    body = b"".join(json.dumps(x).encode() + b"\n" for x in (
        "2.0.2", "org.demo.Greeter", "1.0.0", "hello", "Ljava/lang/String;", "world"))
    ok = b"1\n" + json.dumps("hi world").encode() + b"\n"
    failed = json.dumps("boom: no such method").encode() + b"\n"
    records = _records(
        ("request", frame(0xC0 | serialization, 0, 5, body) + frame(0xC0 | serialization, 0, 6,
                                                                    body)),
        ("response", frame(serialization, 20, 5, ok) + frame(serialization, 70, 6, failed)),
    )  # fmt: skip
    got = [(r.request.service, r.request.method, r.request.version, r.response.status.name,
            r.response.result, r.response.error_message, r.status) for r in records]  # fmt: skip
    assert got == [
        ("org.demo.Greeter", "hello", "1.0.0", "OK", "value", None, Status.OK),
        ("org.demo.Greeter", "hello", "1.0.0", "SERVICE_ERROR", None, "boom: no such method",
         Status.SERVER_ERROR),
    ]  # fmt: skip
    assert all(not r.request.errors and not r.response.errors for r in records)


@pytest.mark.parametrize("value", [None, "", "a", "sayHello", "org.demo.GreetingService",
                                   "é" * 3, "x" * 100, "服务"])
def test_kryo_strings_round_trip(value: str | None) -> None:
    from libtrace.parsers import _kryo
    from libtrace.parsers._cursor import Cursor

    data = _kryo.encode_string(value) + b"tail"
    cur = Cursor(data)
    assert _kryo.read_string(cur) == value
    assert data[cur.pos:] == b"tail"


def test_a_kryo_request_gives_its_service_and_method() -> None:
    from libtrace.parsers import _kryo
    from libtrace.parsers._dubbo import DubboParser

    body = b"".join(_kryo.encode_string(s) for s in ("2.0.2", "org.demo.Kryo", "1.0", "put"))
    header = b"\xda\xbb" + bytes([0x80 | 0x40 | 8, 0]) + (9).to_bytes(8, "big")
    reply = b"\xda\xbb" + bytes([8, 20]) + (9).to_bytes(8, "big") + (1).to_bytes(4, "big") + b"\x01"
    parser = DubboParser()
    parser.feed("request", header + len(body + b"args").to_bytes(4, "big") + body + b"args", 1)
    parser.feed("response", reply, 2)
    request, response = parser.events()
    assert (request.service, request.method, request.version, request.serialization) == (
        "org.demo.Kryo", "put", "1.0", 8)
    assert not request.errors and response.result == "value"

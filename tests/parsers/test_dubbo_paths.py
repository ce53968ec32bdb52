"""Dubbo paths the cases table does not take: JSON-lines and Kryo bodies that do not
decode, resync over bad headers and a magic cut in two, the signature's body bound,
and the Kryo and hessian2 string forms not met elsewhere."""

from __future__ import annotations

import json

import pytest

from libtrace.parsers import (
    Cursor,
    DubboParser,
    DubboRequest,
    DubboResponse,
    LimitExceededError,
    MalformedError,
)
from libtrace.parsers import _kryo as kryo
from libtrace.parsers._dubbo import SPEC
from libtrace.parsers.hessian2 import encode_string, read_string

from .test_dubbo import frame, request

FASTJSON, KRYO = 6, 8


def _lines(*values: object) -> bytes:
    return b"".join(json.dumps(v).encode() + b"\n" for v in values)


def _decoded(direction: str, wire: bytes) -> DubboRequest | DubboResponse:
    parser = DubboParser()
    parser.feed(direction, wire, 1)
    (message,) = parser.events()
    assert isinstance(message, DubboRequest | DubboResponse)
    return message


@pytest.mark.parametrize(("body", "error"), [
    # the body ends before the method's line
    (_lines("2.0.2", "org.demo.Greeter").rstrip(b"\n"),
     "body: TruncatedError: JSON line 2 not in the body read"),
    (_lines("2.0.2", "org.demo.Greeter") + b"{not json\n",
     "body: MalformedError: JSON line 2 is not JSON"),
    (_lines("2.0.2", 42, "1.0", "hello"), "body: MalformedError: JSON line 1 is not a string"),
])  # fmt: skip
def test_a_json_request_that_does_not_decode_keeps_its_header(body: bytes, error: str) -> None:
    req = _decoded("request", frame(0xC0 | FASTJSON, 0, 7, body))
    assert isinstance(req, DubboRequest)
    assert (req.request_id, req.serialization, req.service, req.method, req.errors) == (
        7, FASTJSON, None, None, (error,))


@pytest.mark.parametrize(("body", "error"), [
    (b"9\n", "unknown response type 9"),
    (b'"value"\n', "unknown response type 'value'"),
])  # fmt: skip
def test_a_json_lines_response_of_an_unknown_type_says_so(body: bytes, error: str) -> None:
    resp = _decoded("response", frame(FASTJSON, 20, 7, body))
    assert isinstance(resp, DubboResponse)
    assert (resp.status.name, resp.result, resp.errors) == ("OK", None, (error,))


def test_a_kryo_response_of_an_unknown_type_says_so() -> None:
    resp = _decoded("response", frame(KRYO, 20, 7, b"\x09"))
    assert isinstance(resp, DubboResponse) and (resp.result, resp.errors) == (
        None, ("unknown response type 9",))


def test_a_kryo_error_response_gives_its_message() -> None:
    resp = _decoded("response", frame(KRYO, 70, 7, kryo.encode_string("boom: no provider")))
    assert isinstance(resp, DubboResponse)
    assert (resp.status.name, resp.error_message, resp.errors) == (
        "SERVICE_ERROR", "boom: no provider", ())


def test_a_kryo_request_whose_string_count_runs_on_says_so() -> None:
    req = _decoded("request", frame(0xC0 | KRYO, 0, 7, b"\xc1\xff\xff\xff\xff\x01"))
    assert isinstance(req, DubboRequest) and req.errors == (
        "body: MalformedError: Kryo count longer than five bytes",)


@pytest.mark.parametrize(("wire", "error", "message"), [
    (b"a" * (kryo.MAX_STRING_CHARS + 1), LimitExceededError, "over 65536 characters"),
    # a flagged count of 70001: 70000 characters announced
    (bytes([0x80 | 0x40 | (70001 & 0x3F), 0x80 | (70001 >> 6 & 0x7F), 70001 >> 13]),
     LimitExceededError, "Kryo string of 70000 characters"),
    (b"\x82\xc3\x28", MalformedError, "Kryo string is not UTF-8"),  # one character, bad
])  # fmt: skip
def test_kryo_strings_over_the_bound_or_not_utf8_are_refused(wire: bytes, error: type,
                                                             message: str) -> None:  # fmt: skip
    with pytest.raises(error, match=message):
        kryo.read_string(Cursor(wire + b"\x80"))


def test_a_hessian_string_with_three_byte_characters_round_trips() -> None:
    wire = encode_string("€ 服务")
    assert wire == b"\x04" + "€ 服务".encode()  # four characters, three of them 3 bytes
    cur = Cursor(wire + b"tail")
    assert read_string(cur) == "€ 服务" and cur.remaining == 4


# -- resync ------------------------------------------------------------------------------------
def test_resync_passes_over_a_magic_whose_header_is_invalid() -> None:
    bad = b"\xda\xbb\xc1" + bytes(13)  # serialization 1 does not exist
    parser = DubboParser(mid_stream=True)
    parser.feed("request", b"tail" + bad + request(4), 1)
    assert [m.request_id for m in parser.events()] == [4]


def test_resync_waits_on_a_magic_too_close_to_the_end_for_its_header() -> None:
    wire = request(5)
    parser = DubboParser(mid_stream=True)
    parser.feed("request", b"tail of a body" + wire[:10], 1)
    assert parser.events() == []
    parser.feed("request", wire[10:], 2)
    assert [(m.request_id, m.method, m.ts_ns) for m in parser.events()] == [(5, "hello", 1)]


def test_resync_keeps_a_first_magic_byte_at_the_end() -> None:
    wire = request(6)
    parser = DubboParser(mid_stream=True)
    parser.feed("request", b"tail of a body" + wire[:1], 1)
    assert parser.events() == []
    parser.feed("request", wire[1:], 2)
    assert [(m.request_id, m.method) for m in parser.events()] == [(6, "hello")]


def test_the_signature_refuses_an_implausibly_large_first_body() -> None:
    header = b"\xda\xbb\xc2\x00" + bytes(8)
    assert SPEC.signature(header + (100 << 20).to_bytes(4, "big"), False) is not None
    assert SPEC.signature(header + ((100 << 20) + 1).to_bytes(4, "big"), False) is None

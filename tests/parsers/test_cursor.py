from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libtrace.errors import ProtocolError
from libtrace.parsers import Cursor, LimitExceededError, TruncatedError

CASES = [
    # (method, args, bytes, expected value)
    ("u8", (), b"\x7f", 0x7F),
    ("u16", (), b"\x01\x02", 0x0102),
    ("u16le", (), b"\x01\x02", 0x0201),
    ("u24", (), b"\x01\x02\x03", 0x010203),
    ("u24le", (), b"\x01\x02\x03", 0x030201),
    ("u32", (), b"\x00\x00\x01\x00", 256),
    ("u32le", (), b"\x00\x01\x00\x00", 256),
    ("u64", (), b"\x00" * 7 + b"\x05", 5),
    ("u64le", (), b"\x05" + b"\x00" * 7, 5),
    ("i16", (), b"\xff\xff", -1),
    ("i32", (), b"\xff\xff\xff\xfe", -2),
    ("i64", (), b"\xff" * 8, -1),
    ("i16le", (), b"\xfe\xff", -2),
    ("i32le", (), b"\xfd\xff\xff\xff", -3),
    ("i64le", (), b"\xfc" + b"\xff" * 7, -4),
    ("f64", (), b"\x3f\xf8" + bytes(6), 1.5),
    ("varint", (), b"\xac\x02", 300),
    ("zigzag", (), b"\x03", -2),
    ("zigzag", (), b"\x04", 2),
    ("mqtt_varint", (), b"\xff\x7f", 16383),
    ("bytes", (3,), b"abc", b"abc"),
    ("string", (2,), b"\xc3\xa9", "é"),
    ("cstring", (), b"5.7\x00", b"5.7"),
]


@pytest.mark.parametrize(("method", "args", "data", "expected"), CASES,
                         ids=[f"{c[0]}-{c[2].hex()}" for c in CASES])
def test_reads(method: str, args: tuple, data: bytes, expected: object) -> None:
    cur = Cursor(data)
    assert getattr(cur, method)(*args) == expected
    assert cur.remaining == 0


@pytest.mark.parametrize(("method", "args", "data", "expected"), CASES,
                         ids=[f"{c[0]}-{c[2].hex()}" for c in CASES])
def test_truncated_reads_raise_truncated_error(method: str, args: tuple, data: bytes,
                                               expected: object) -> None:
    with pytest.raises(TruncatedError):
        getattr(Cursor(data[:-1]), method)(*args)


def test_counted_and_restrict_to() -> None:
    cur = Cursor(b"\x00\x03abc\x02xyz!")
    assert cur.counted_bytes(cur.u16) == b"abc"
    with cur.restrict_to(3) as inner:
        assert inner.u8() == 2
        with pytest.raises(TruncatedError):
            inner.bytes(5)  # a lying inner length cannot read past the part
    assert cur.rest() == b"z!"


def test_peek_does_not_consume_and_stops_at_the_end() -> None:
    cur = Cursor(b"\x07")
    assert cur.peek_u8() == 7 and cur.u8() == 7
    with pytest.raises(TruncatedError, match="need 1 byte at offset 1, 0 left"):
        cur.peek_u8()


@pytest.mark.parametrize("n", [-1, 4])
def test_restrict_to_more_than_is_left_or_a_negative_length_is_truncated(n: int) -> None:
    cur = Cursor(b"abc")
    with pytest.raises(TruncatedError, match=f"need {n} bytes at offset 0, 3 left"):
        cur.restrict_to(n).__enter__()
    assert cur.pos == 0 and cur.remaining == 3


def test_varint_too_long() -> None:
    with pytest.raises(LimitExceededError):
        Cursor(b"\xff" * 20).varint()


def test_negative_length() -> None:
    with pytest.raises(LimitExceededError):
        Cursor(b"abc").bytes(-1)


@pytest.mark.fuzz
@given(st.binary(max_size=64), st.lists(st.sampled_from(
    ["u8", "u16", "u24le", "u32", "u64le", "i16", "varint", "zigzag", "cstring", "u16len"]),
    max_size=20))
def test_fuzz_cursor_raises_only_protocol_errors(data: bytes, ops: list[str]) -> None:
    cur = Cursor(data)
    for op in ops:
        try:
            if op == "u16len":
                cur.counted_bytes(cur.u16)
            else:
                getattr(cur, op)()
        except ProtocolError:
            break
        assert 0 <= cur.remaining <= len(data)

"""The compiled Redis readers (_respscan.c) against their Python twins.

Each reader is given the same bytes, at the same offset, under the same
limits as ``_redis._command_python`` / ``_reply_python``, and must return the
same thing: None where the twin gives up, else equal words, kinds and ends.
Small limits make the clipping and the count and length checks reachable;
the agreement of the twins with the general RESP reader is test_redis.py's.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libtrace import native
from libtrace.parsers import _redis

from .test_redis import command_bytes, reply_bytes

pytestmark = pytest.mark.fuzz

SCAN = native.respscan()
#: Limits as the parser passes them, and small ones that words and lines reach.
LIMITS = st.one_of(
    st.just(("default",)),
    st.tuples(st.integers(1, 20), st.integers(0, 14), st.integers(1, 14)),
)


def _both(name: str, data: bytes, prefix: bytes, limits: tuple) -> tuple:
    """What the Python reader and the compiled one make of ``data`` after ``prefix``."""
    assert SCAN is not None, "a C compiler and Python's headers are here"
    if limits == ("default",):
        limits = _redis._COMMAND_LIMITS if name == "command" else _redis._REPLY_LIMITS
    padded, base = prefix + data, len(prefix)
    python = getattr(_redis, f"_{name}_python")(padded, base, limits)
    compiled = getattr(SCAN, name)(padded, base, limits)
    return python, compiled


@given(command_bytes(), st.sampled_from([b"", b"+PRIOR\r\n"]), LIMITS)
def test_the_compiled_command_reader_reads_as_the_python_one(
    data: bytes, prefix: bytes, limits: tuple
) -> None:
    if not data:
        return  # the parser never asks of an empty buffer
    python, compiled = _both("command", data, prefix, limits)
    assert compiled == python


@given(reply_bytes(), st.sampled_from([b"", b"+PRIOR\r\n"]), LIMITS)
def test_the_compiled_reply_reader_reads_as_the_python_one(
    data: bytes, prefix: bytes, limits: tuple
) -> None:
    if not data:
        return
    python, compiled = _both("reply", data, prefix, limits)
    assert compiled == python


@pytest.mark.parametrize(("name", "data", "limits", "expected"), [
    ("command", b"*2\r\n$3\r\nGET\r\n$6\r\nabcdef\r\n", (16, 100, 4),
     (["GET", "abc…"], 25)),  # clipped as clip() clips
    ("command", b"*2\r\n$3\r\nGET\r\n$2\r\n\xff\xfe\r\n", (16, 100, 100),
     (["GET", "\ufffd\ufffd"], 21)),  # not UTF-8: replacement characters
    ("command", b"*3\r\n$1\r\na\r\n", (2, 100, 100), None),  # more words than kept
    ("command", b"*1\r\n$5\r\nabcde\r\n", (16, 4, 100), None),  # a word longer than allowed
    ("reply", b"+a long status\r\n", (4, 100, 100), None),  # a line longer than allowed
    ("reply", b"-ERR x\r\n", (100, 100, 3), ("error", "ER…", 8)),
    ("reply", b":1\r\n", (100, 100, 100), None),
])  # fmt: skip
def test_the_compiled_readers_limits(
    name: str, data: bytes, limits: tuple, expected: object
) -> None:
    assert SCAN is not None
    assert getattr(SCAN, name)(data, 0, limits) == expected
    assert getattr(_redis, f"_{name}_python")(data, 0, limits) == expected


@pytest.mark.parametrize("args", [
    (bytearray(b"*1\r\n"), 0, (1, 1, 1)),  # bytes only: the parser's window is bytes
    (b"*1\r\n", 4, (1, 1, 1)),  # the base past the data
    (b"*1\r\n", -1, (1, 1, 1)),
    (b"*1\r\n", 0, (1, 1)),  # a limit missing
    (b"*1\r\n", 0, (1, 1, 0)),  # no text at all: clip() would cut from the end
    (b"*1\r\n", 0, [1, 1, 1]),
    (b"*1\r\n", 0),
])  # fmt: skip
def test_the_compiled_readers_refuse_what_the_parser_never_passes(args: tuple) -> None:
    assert SCAN is not None
    with pytest.raises((TypeError, ValueError)):
        SCAN.command(*args)
    with pytest.raises((TypeError, ValueError)):
        SCAN.reply(*args)


def test_the_parser_reads_with_the_compiled_readers_where_they_are() -> None:
    assert _redis._NATIVE_COMMAND is not None and _redis._NATIVE_REPLY is not None

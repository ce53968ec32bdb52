"""Redis paths the cases table does not take: malformed and oversized RESP values,
commands the fast path leaves to the general reader, inline edge cases, resync
onto an incomplete value, and a CLIENT REPLY mode Redis does not know."""

from __future__ import annotations

import pytest

from libtrace.parsers import Desync, Pairer, RedisParser, RedisRequest, RedisResponse, Status
from libtrace.parsers._limits import MAX_ARGS_KEPT, MAX_MESSAGE_BYTES, MAX_RESP_LINE_BYTES

from ._harness import assert_split_invariant, fed_whole, reasons
from .test_redis import resp_command


def events(request: bytes = b"", response: bytes = b"", *, mid: bool = False) -> list:
    return fed_whole(RedisParser(mid_stream=mid), request, response)


@pytest.mark.parametrize(("reply", "reason"), [
    (b":12a\r\n", "MalformedError: invalid RESP integer b'12a'"),
    (b"$-2\r\n", "MalformedError: negative bulk_string length -2"),
    (b"%-1\r\n", "MalformedError: negative map length -1"),  # only $ and * have RESP2's -1
    (b"$%d\r\n" % (MAX_MESSAGE_BYTES + 1),
     f"LimitExceededError: bulk_string of {MAX_MESSAGE_BYTES + 1} bytes"),
    (b"$3\r\nabcXY\r\n", "MalformedError: bulk_string not terminated by CRLF"),
    (b"_x\r\n", "MalformedError: RESP3 null with a payload"),
    (b"#x\r\n", "MalformedError: invalid RESP3 boolean b'x'"),
    (b"+" + b"a" * (MAX_RESP_LINE_BYTES + 1),
     f"LimitExceededError: RESP line longer than {MAX_RESP_LINE_BYTES} bytes"),
])  # fmt: skip
def test_a_malformed_or_oversized_reply_is_a_desync(reply: bytes, reason: str) -> None:
    evs = events(response=reply)
    assert isinstance(evs[0], Desync) and evs[0].reason == reason


def test_a_command_longer_than_the_fast_path_keeps_its_first_arguments() -> None:
    """Beyond MAX_ARGS_KEPT words the general reader parses it: the command and
    the arguments kept, the count of all of them."""
    words = [b"MSET", *(b"k%d" % i for i in range(19))]
    (req,) = assert_split_invariant(RedisParser, resp_command(*words), b"", [3, 40, 77])
    assert isinstance(req, RedisRequest)
    assert (req.command, req.arg_count) == ("MSET", 19)
    assert req.args == tuple(f"k{i}" for i in range(MAX_ARGS_KEPT - 1))


@pytest.mark.parametrize(("request_bytes", "reason"), [
    (b"$3\r\nGET\r\n", "a command must be a non-empty array, not bulk_string"),
    (b"*0\r\n", "a command must be a non-empty array, not array"),
    (b"*2\r\n$3\r\nGET\r\n:1\r\n", "command arguments must be bulk strings"),
])  # fmt: skip
def test_a_request_that_is_no_command_is_a_desync(request_bytes: bytes, reason: str) -> None:
    parser = RedisParser()
    parser.feed("request", request_bytes, 1)
    assert reasons(parser.events()) == [f"MalformedError: {reason}"]
    parser.feed("request", resp_command(b"PING"), 2)  # the next command parses
    assert [(type(e), e.command) for e in parser.events()] == [(RedisRequest, "PING")]


def test_an_inline_command_with_unbalanced_quotes_keeps_its_words_and_says_so() -> None:
    """Redis answers it with a protocol error; the record keeps the words split at spaces."""
    parser, pairer = RedisParser(), Pairer()
    parser.feed("request", b'SET "a b\r\n', 1)
    parser.feed("response", b"-ERR Protocol error: unbalanced quotes in request\r\n", 2)
    (record,) = [r for e in parser.events() for r in pairer.add(e)]
    assert (record.request.command, record.request.args, record.request.errors) == (
        "SET", ('"a', "b"), ("unbalanced quotes in an inline command",))
    assert record.status is Status.CLIENT_ERROR


def test_empty_inline_lines_are_ignored() -> None:
    evs = events(b"\r\n   \r\nPING\r\n")
    assert [(type(e), e.command, e.inline) for e in evs] == [(RedisRequest, "PING", True)]


def test_an_inline_command_beyond_the_line_bound_is_a_desync() -> None:
    evs = events(b"SET k " + b"v" * MAX_RESP_LINE_BYTES)
    assert reasons(evs) == ["LimitExceededError: inline command too long"]


def test_mid_stream_resync_may_start_at_a_value_not_yet_whole() -> None:
    parser = RedisParser(mid_stream=True)
    parser.feed("response", b"lue\r\n$5\r\nhel", 1)
    assert parser.events() == []
    parser.feed("response", b"lo\r\n", 2)
    (resp,) = parser.events()
    assert isinstance(resp, RedisResponse) and (resp.type, resp.value, resp.ts_ns) == (
        "bulk_string", "hello", 1)


def test_a_client_reply_mode_redis_does_not_know_leaves_replies_on() -> None:
    """CLIENT REPLY FOO is answered with an error and changes nothing."""
    commands = resp_command(b"CLIENT", b"REPLY", b"FOO") + resp_command(b"GET", b"a")
    parser, pairer = RedisParser(), Pairer()
    parser.feed("request", commands, 1)
    parser.feed("response", b"-ERR syntax error\r\n$1\r\n1\r\n", 2)
    records = [r for e in parser.events() for r in pairer.add(e)] + pairer.flush()
    assert [(r.request.command, r.request.reply, r.status) for r in records] == [
        ("CLIENT", True, Status.CLIENT_ERROR), ("GET", True, Status.OK)]


def test_the_command_after_one_that_is_no_command_is_not_lost() -> None:
    # The parser consumes the bad message itself; the base then drops nothing
    # more (it used to drop the next command's first byte, and so the command).
    evs = events(b"$3\r\nGET\r\n" + resp_command(b"PING"))
    assert len(reasons(evs)) == 1
    assert [e.command for e in evs if isinstance(e, RedisRequest)] == ["PING"]

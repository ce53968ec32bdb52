from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libtrace.parsers import Desync, Direction, Pairer, RedisParser, Status
from libtrace.parsers._base import Side
from libtrace.parsers._events import clip

from ._harness import MODES, assert_split_invariant, feed_chunks, messages, run, summary


def resp_command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


CASES = [
    ("set", resp_command(b"SET", b"k", b"v"), b"+OK\r\n",
     [{"command": "SET", "args": ["k", "v"]}, {"type": "simple_string", "error": None}]),
    ("get-null", resp_command(b"GET", b"nope"), b"$-1\r\n",
     [{"command": "GET", "args": ["nope"]}, {"type": "null", "error": None}]),
    ("error", resp_command(b"INCR", b"k"), b"-ERR not an integer\r\n",
     [{"command": "INCR", "args": ["k"]}, {"type": "error", "error": "ERR not an integer"}]),
    ("inline", b"PING\r\n", b"+PONG\r\n",
     [{"command": "PING", "args": []}, {"type": "simple_string", "error": None}]),
    ("resp3-map", resp_command(b"HGETALL", b"h"), b"%2\r\n+a\r\n:1\r\n+b\r\n,2.5\r\n",
     [{"command": "HGETALL", "args": ["h"]}, {"type": "map", "error": None}]),
    ("nested", resp_command(b"EXEC"), b"*2\r\n*1\r\n$1\r\nx\r\n:5\r\n",
     [{"command": "EXEC", "args": []}, {"type": "array", "error": None}]),
    ("pipelined", resp_command(b"GET", b"a") + resp_command(b"GET", b"b"),
     b"$1\r\n1\r\n$1\r\n2\r\n",
     [{"command": "GET", "args": ["a"]}, {"command": "GET", "args": ["b"]},
      {"type": "bulk_string", "error": None}, {"type": "bulk_string", "error": None}]),
    ("resp3-types", resp_command(b"X"), b"|1\r\n+ttl\r\n:3\r\n#t\r\n",
     [{"command": "X", "args": []}, {"type": "boolean", "error": None}]),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "request_bytes", "response_bytes", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_cases(name: str, request_bytes: bytes, response_bytes: bytes, expected: list,
               mode: str) -> None:
    events = run(RedisParser, request_bytes, response_bytes, mode)
    got = summary(events, ("command", "args", "type", "error"))
    want = [{"command": None, "args": None, "type": None, "error": None, **e} for e in expected]
    assert got == want
    if mode != "junk":
        assert not [e for e in events if isinstance(e, Desync)]


def test_push_is_unsolicited() -> None:
    p, pairer = RedisParser(), Pairer()
    p.feed("request", resp_command(b"GET", b"a"), 1)
    p.feed("response", b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n$1\r\nv\r\n", 2)
    records = [r for e in p.events() for r in pairer.add(e)]
    assert len(records) == 2 and records[0].request is None
    assert records[1].request is not None and records[1].latency_ns == 1


def test_a_resp3_subscribe_confirmation_answers_the_command() -> None:
    """RESP3 sends it as a push; the messages that follow stay unsolicited."""
    p, pairer = RedisParser(), Pairer()
    p.feed("request", resp_command(b"SUBSCRIBE", b"c"), 1)
    p.feed("response", b">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n", 2)
    p.feed("response", b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n", 3)
    records = [r for e in p.events() for r in pairer.add(e)]
    assert [(r.request is not None, r.response is not None) for r in records] == [
        (True, True), (False, True)]
    assert records[0].status is Status.OK and records[1].response.push  # type: ignore[union-attr]


def test_error_classes() -> None:
    p, pairer = RedisParser(), Pairer()
    p.feed("request", resp_command(b"A") + resp_command(b"B"), 1)
    p.feed("response", b"-WRONGTYPE x\r\n-LOADING busy\r\n", 2)
    records = [r for e in p.events() for r in pairer.add(e)]
    assert [r.status for r in records] == [Status.CLIENT_ERROR, Status.SERVER_ERROR]


def test_depth_limit() -> None:
    p = RedisParser()
    p.feed("response", b"*1\r\n" * 100 + b":1\r\n", 1)
    assert any(isinstance(e, Desync) for e in p.events())


def test_mid_stream() -> None:
    p = RedisParser(mid_stream=True)
    p.feed("request", b"lue\r\n" + resp_command(b"GET", b"k"), 1)
    assert [m.fields()["command"] for m in messages(p.events())] == ["GET"]


@pytest.mark.fuzz
@given(st.binary(max_size=300), st.binary(max_size=300),
       st.lists(st.integers(0, 400), max_size=8), st.booleans())
def test_fuzz_arbitrary_bytes(req: bytes, resp: bytes, cuts: list[int], mid: bool) -> None:
    assert_split_invariant(lambda: RedisParser(mid_stream=mid), req, resp, cuts)


@pytest.mark.fuzz
@given(st.lists(st.lists(st.binary(max_size=20), min_size=1, max_size=5), min_size=1,
                max_size=5), st.lists(st.integers(0, 500), max_size=6))
def test_fuzz_generated_commands_roundtrip(commands: list, cuts: list[int]) -> None:
    commands = [[b"CMD" + c[0], *c[1:]] for c in commands]
    wire = b"".join(resp_command(*c) for c in commands)
    events = feed_chunks(RedisParser(), "request", wire, cuts)
    got = [(m.fields()["command"], m.fields()["args"]) for m in messages(events)]
    text = [[a.decode("utf-8", "replace") for a in c] for c in commands]
    assert got == [(t[0].upper(), t[1:]) for t in text]


# ---- the command fast path ------------------------------------------------


def _resp_command(words: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


@st.composite
def command_bytes(draw: st.DrawFn) -> bytes:
    """Commands as clients send them, then cut short or with a byte changed."""
    words = draw(st.lists(st.binary(max_size=12), min_size=1, max_size=20))
    data = _resp_command(words) + draw(st.sampled_from([b"", b"*1\r\n$4\r\nPING\r\n"]))
    return _damaged(draw, data, b"*$:-\r\n0179x")


def _damaged(draw: st.DrawFn, whole: bytes, alphabet: bytes) -> bytes:
    """``whole`` as it is, cut short, or with one byte replaced by one of ``alphabet``."""
    data = bytearray(whole)
    edit = draw(st.sampled_from(["whole", "cut", "byte"]))
    if edit == "cut":
        del data[draw(st.integers(0, len(data))):]
    elif edit == "byte" and data:
        data[draw(st.integers(0, len(data) - 1))] = draw(st.sampled_from(alphabet))
    return bytes(data)


def buffered(data: bytes, pieces: int = 1) -> Side:
    """A request side holding ``data``: fed as one chunk (``pieces`` 1; the side
    keeps that bytes object as its ``head``, which the fast readers read), as
    the rest of one chunk after a message consumed (0: they read it at an offset
    of ``head``), or in two chunks (2: they read a copy of the buffer)."""
    side = Side(Direction.REQUEST)
    if pieces == 0:
        prior = b"+PRIOR\r\n"
        side.append(prior + data, 1)
        side.consume(len(prior))
        assert side.head is not None and side.head_at == len(prior) and side.buf == data
        return side
    cut = len(data) // 2 if pieces > 1 else len(data)
    parts = [part for part in (data[:cut], data[cut:]) if part]
    for part in parts:
        side.append(part, 1)
    assert (side.head is None) == (len(parts) != 1)
    return side


@pytest.mark.fuzz
@given(command_bytes(), st.sampled_from([1, 0, 2]))
def test_the_command_fast_path_agrees_with_the_general_reader(data: bytes, pieces: int) -> None:
    from libtrace.parsers._redis import _command, _text, parse_value

    fast = _command(buffered(data, pieces))
    if fast is None:
        return  # the general reader decides alone
    words, end = fast
    value, general_end = parse_value(bytearray(data))  # whatever it raises is a failure here
    assert end == general_end
    assert value.type == "array" and value.length == len(words)
    assert [item.type for item in value.items] == ["bulk_string"] * len(words)
    assert [_text(item.data) for item in value.items] == words


@st.composite
def reply_bytes(draw: st.DrawFn) -> bytes:
    """Replies as servers send them, then cut short or with a byte changed."""
    body = draw(st.binary(max_size=12))
    line = body.replace(b"\r", b"").replace(b"\n", b"")
    data = draw(st.sampled_from([
        b"+" + line + b"\r\n", b"-ERR " + line + b"\r\n", b"$%d\r\n" % len(body) + body + b"\r\n",
        b"$-1\r\n", b":12\r\n", b"*1\r\n$1\r\nx\r\n",
    ])) + draw(st.sampled_from([b"", b"+OK\r\n"]))  # fmt: skip
    return _damaged(draw, data, b"+-$:\r\n0179x")


@pytest.mark.fuzz
@given(reply_bytes(), st.sampled_from([1, 0, 2]))
def test_the_reply_fast_path_agrees_with_the_general_reader(data: bytes, pieces: int) -> None:
    from libtrace.parsers._redis import _reply, parse_value

    fast = _reply(buffered(data, pieces))
    if fast is None:
        return  # the general reader decides alone
    kind, text, end = fast
    general = RedisParser()
    value, general_end = parse_value(bytearray(data))  # whatever it raises is a failure here
    response = general._response(value, 0, general_end)
    assert end == general_end
    assert (kind, response.error if kind == "error" else response.value) == (value.type, text)
    assert response.push is False and response.length is None


def test_the_reply_fast_path_takes_common_replies_and_leaves_the_rest() -> None:
    from libtrace.parsers._redis import _reply

    assert _reply(buffered(b"+OK\r\n$1\r\n")) == ("simple_string", "OK", 5)
    assert _reply(buffered(b"-ERR no\r\n")) == ("error", "ERR no", 9)
    assert _reply(buffered(b"$3\r\nabc\r\n")) == ("bulk_string", "abc", 9)
    assert _reply(buffered(b"$3\r\nabc\r")) is None  # not whole yet
    assert _reply(buffered(b"$-1\r\n")) is None  # a null
    assert _reply(buffered(b":1\r\n")) is None  # an integer
    assert _reply(buffered(b"*1\r\n$1\r\nx\r\n")) is None  # an array


def test_replies_of_a_subscribed_or_monitoring_connection_take_the_general_reader() -> None:
    """Their simple strings and arrays may be pushes, which the fast path cannot tell."""
    parser, pairer = RedisParser(), Pairer()
    parser.feed("request", _resp_command([b"MONITOR"]), 1)
    parser.feed("response", b"+OK\r\n+1700000000.123456 [0 127.0.0.1:50000] \"GET\" \"k\"\r\n", 2)
    events = parser.events()
    assert [getattr(e, "push", None) for e in events] == [None, False, True]
    records = [r for e in events for r in pairer.add(e)]
    assert len(records) == 2 and records[0].response is not None


def test_the_fast_path_takes_common_commands_and_leaves_the_rest() -> None:
    from libtrace.parsers._redis import _command

    set_command = _resp_command([b"SET", b"key:1", b"value"])
    assert _command(buffered(set_command + b"*1\r\n")) == (["SET", "key:1", "value"],
                                                           len(set_command))  # fmt: skip
    assert _command(buffered(set_command[:-1])) is None  # not whole yet
    assert _command(buffered(b"*1\r\n:1\r\n")) is None  # not a bulk string
    assert _command(buffered(b"*1\r\n$-1\r\n")) is None  # a null
    assert _command(buffered(_resp_command([b"x"] * 17))) is None  # more than are kept
    # Pipelined: after the first command, the next is read in the same chunk.
    side = buffered(set_command + _resp_command([b"GET", b"k"]))
    first = _command(side)
    assert first is not None
    side.consume(first[1])
    assert side.head is not None and side.head_at == len(set_command)
    assert _command(side) == (["GET", "k"], len(_resp_command([b"GET", b"k"])))


@given(st.binary(max_size=40))
def test_a_fast_word_is_the_text_the_general_reader_makes(data: bytes) -> None:
    from libtrace.parsers._redis import _MAX_TEXT, _text, _word

    assert _word(data, _MAX_TEXT) == _text(data)  # invalid UTF-8 replaced alike


def test_a_command_or_reply_longer_than_the_fast_window_takes_the_general_reader() -> None:
    """The fast readers see a copy of the buffer's first _FAST_WINDOW bytes when
    it holds more than one chunk: past them they answer None, and the general
    reader makes the same record.  One chunk they read whole, uncopied."""
    from libtrace.parsers._redis import _FAST_WINDOW, _command, _reply

    value = b"v" * _FAST_WINDOW
    command, reply = _resp_command([b"SET", b"k", value]), b"$%d\r\n%s\r\n" % (len(value), value)
    assert _command(buffered(command, 2)) is None and _reply(buffered(reply, 2)) is None
    assert _command(buffered(command)) == (["SET", "k", clip(value.decode())], len(command))
    assert _reply(buffered(reply)) == ("bulk_string", clip(value.decode()), len(reply))
    assert _command(buffered(command[:_FAST_WINDOW])) is None  # cut: not whole yet
    short = _resp_command([b"SET", b"k", b"v" * 100])
    assert _command(buffered(short + command, 2)) == (["SET", "k", "v" * 100], len(short))
    parser, pairer = RedisParser(), Pairer()
    parser.feed("request", command + _resp_command([b"GET", b"k"]), 1)
    parser.feed("response", b"+OK\r\n" + reply, 2)  # the reply follows in the copy
    records = [r for e in parser.events() for r in pairer.add(e)]
    assert [(r.request.command, r.response.value if r.response else None) for r in records] == [
        ("SET", "OK"), ("GET", clip(value.decode()))]  # fmt: skip


def test_client_reply_off_and_skip_leave_commands_unanswered_and_pairing_follows() -> None:
    """Redis answers neither CLIENT REPLY OFF nor SKIP, nor the commands they
    silence; ON is answered.  Each reply must pair with its own command."""
    commands = [[b"SET", b"a", b"1"], [b"CLIENT", b"REPLY", b"SKIP"], [b"SET", b"b", b"2"],
                [b"GET", b"a"], [b"client", b"reply", b"off"], [b"SET", b"c", b"3"],
                [b"CLIENT", b"REPLY", b"ON"], [b"GET", b"c"]]  # fmt: skip
    replies = b"+OK\r\n" + b"$1\r\n1\r\n" + b"+OK\r\n" + b"$1\r\n3\r\n"
    parser, pairer = RedisParser(), Pairer()
    parser.feed("request", b"".join(_resp_command(c) for c in commands), 1)
    parser.feed("response", replies, 2)
    records = [r for e in parser.events() for r in pairer.add(e)] + pairer.flush()
    seen = {(" ".join([r.request.command, *r.request.args]),
             None if r.response is None else (r.response.value or r.response.type), r.status)
            for r in records}  # fmt: skip
    assert seen == {
        ("SET a 1", "OK", Status.OK), ("CLIENT REPLY SKIP", None, Status.OK),
        ("SET b 2", None, Status.OK), ("GET a", "1", Status.OK),
        ("CLIENT reply off", None, Status.OK), ("SET c 3", None, Status.OK),
        ("CLIENT REPLY ON", "OK", Status.OK), ("GET c", "3", Status.OK),
    }  # fmt: skip


@pytest.mark.parametrize(("line", "words"), [
    (b"SET k v\r", [b"SET", b"k", b"v"]),
    (b'SET "a key" "two\\nlines"', [b"SET", b"a key", b"two\nlines"]),
    (b"SET 'it\\'s' v", [b"SET", b"it's", b"v"]),
    (b'SET "\\x41\\x4a" ""', [b"SET", b"AJ", b""]),
    (b'SET pre"fix ed" v', [b"SET", b"prefix ed", b"v"]),  # a quote may start mid-word
    (b'SET "unbalanced v', None),
    (b'SET "closed"then v', None),  # a closing quote must end the word
])  # fmt: skip
def test_inline_commands_split_as_redis_does(line: bytes, words: list[bytes] | None) -> None:
    from libtrace.parsers._redis import split_inline

    assert split_inline(line) == words


@pytest.mark.fuzz
@given(st.lists(st.binary(max_size=12), min_size=1, max_size=6))
def test_inline_quoting_round_trips(words: list[bytes]) -> None:
    """Each word double-quoted with every byte as \\xHH comes back exactly."""
    from libtrace.parsers._redis import split_inline

    line = b" ".join(b'"' + b"".join(b"\\x%02x" % byte for byte in word) + b'"' for word in words)
    assert split_inline(line) == words


def test_an_inline_command_with_quotes_is_one_record_with_its_words() -> None:
    parser, pairer = RedisParser(), Pairer()
    parser.feed("request", b'SET "my key" \'v 1\'\r\n', 1)
    parser.feed("response", b"+OK\r\n", 2)
    (record,) = [r for e in parser.events() for r in pairer.add(e)]
    assert (record.request.command, record.request.args) == ("SET", ("my key", "v 1"))
    assert record.request.inline and record.response.value == "OK"


def test_monitor_lines_are_records_of_their_own_and_never_answer_a_command() -> None:
    line = b'+1700000000.123456 [0 127.0.0.1:50000] "SET" "a" "1"\r\n'
    parser, pairer = RedisParser(), Pairer()
    parser.feed("request", _resp_command([b"MONITOR"]), 1)
    parser.feed("response", b"+OK\r\n" + line, 2)
    parser.feed("request", _resp_command([b"PING"]), 3)
    parser.feed("response", line + b"+PONG\r\n", 4)
    records = [r for e in parser.events() for r in pairer.add(e)] + pairer.flush()
    pairs = sorted(((r.request.command if r.request else ""),
                    (r.response.value[:10] if r.response else "")) for r in records)  # fmt: skip
    assert pairs == sorted([("MONITOR", "OK"), ("PING", "PONG"),
                            ("", "1700000000"), ("", "1700000000")])  # fmt: skip

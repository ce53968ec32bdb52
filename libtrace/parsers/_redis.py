"""Redis RESP2 and RESP3: commands (arrays and inline), replies, pipelining, pushes.

Theory of operation: a RESP value is parsed in place from the buffer by a
recursive-descent reader that raises :class:`_Incomplete` when the buffer
ends early, so a partial value costs nothing but a later retry, and an
aggregate cut short keeps the elements it read, so that the retry goes on
from there (:meth:`RedisParser._value`).  Nesting is
bounded by :data:`MAX_RESP_DEPTH`, lines by :data:`MAX_RESP_LINE_BYTES` and bulk
strings by :data:`MAX_MESSAGE_BYTES`; an aggregate's claimed length allocates
nothing (elements are parsed one by one and each takes bytes).  Only the
first :data:`MAX_ARGS_KEPT` elements are kept.  Replies pair with commands in
order, except RESP3 pushes (``>``) and RESP2 pub/sub messages, which are
marked unsolicited, as are the lines MONITOR streams, and commands that CLIENT
REPLY OFF or SKIP left without an answer are records of their own.  Streamed
RESP3 strings (``$?``) are not supported and resynchronise.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NamedTuple, cast

from mypy_extensions import mypyc_attr

from .. import native
from ..frozen import hand_init
from ._base import Side, StreamParser, Transport
from ._errors import LimitExceededError, MalformedError
from ._events import REQUEST, RESPONSE, Direction, Message, Status, clip
from ._limits import (
    MAX_ARGS_KEPT,
    MAX_FIELD_CHARS,
    MAX_MESSAGE_BYTES,
    MAX_RESP_DEPTH,
    MAX_RESP_LINE_BYTES,
)
from ._spec import Match, ProtocolSpec
from .redaction import Redaction

#: RESP type bytes and the names records use for them.
TYPES: Final[dict[int, str]] = {
    ord("+"): "simple_string", ord("-"): "error", ord(":"): "integer",
    ord("$"): "bulk_string", ord("*"): "array", ord("_"): "null", ord(","): "double",
    ord("#"): "boolean", ord("!"): "blob_error", ord("="): "verbatim_string",
    ord("("): "big_number", ord("%"): "map", ord("~"): "set", ord(">"): "push",
    ord("|"): "attribute",
}
_INTEGER = re.compile(rb"-?\d{1,20}")
#: error prefixes that blame the client; any other error is the server's
CLIENT_ERROR_PREFIXES = frozenset({
    "ERR", "WRONGTYPE", "NOSCRIPT", "NOAUTH", "NOPERM", "WRONGPASS", "EXECABORT",
    "NOPROTO", "NOGROUP", "BUSYGROUP", "UNKILLABLE", "NOTBUSY", "CROSSSLOT", "MOVED", "ASK",
})
_PUBSUB_KINDS = frozenset({"message", "pmessage", "smessage"})
_SUBSCRIBE: Final = frozenset({"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"})
_SUBSCRIBE_MIN: Final = min(map(len, _SUBSCRIBE))
#: Pushes that confirm a (un)subscribe command (RESP3): its reply, not a message.
_CONFIRMATIONS = frozenset({"subscribe", "psubscribe", "ssubscribe", "unsubscribe",
                            "punsubscribe", "sunsubscribe"})
#: A line MONITOR streams: "+1700000000.123456 [0 127.0.0.1:50000] "SET" ...".
_MONITOR_LINE = re.compile(rb"\d+\.\d+ \[\d+ [^\]]*\] ")


class _Incomplete(Exception):
    """The buffer ends inside the value (internal: becomes "need data")."""


class _Value(NamedTuple):
    type: str
    data: bytes | None = None            #: scalars
    items: tuple[_Value, ...] = ()       #: the first MAX_ARGS_KEPT elements
    length: int | None = None            #: aggregates: element count


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisRequest(Message):
    """A Redis command."""

    @property
    def protocol(self) -> str:
        return "redis"

    @property
    def _not_fields(self) -> frozenset[str]:
        return frozenset({"ts_ns", "size", "errors", "reply"})

    command: str
    args: tuple[str, ...] = ()
    arg_count: int = 0
    inline: bool = False
    #: False where CLIENT REPLY OFF or SKIP silenced the server's answer
    reply: bool = True

    def __init__(  # pragma: no cover
        self, *, ts_ns: int, size: int = 0, errors: tuple[str, ...] = (), _parsed: bool = False,
        command: str, args: tuple[str, ...] = (), arg_count: int = 0, inline: bool = False,
        reply: bool = True,
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.size = size  # type: ignore[misc]
        self.errors = errors  # type: ignore[misc]
        self.command = command  # type: ignore[misc]
        self.args = args  # type: ignore[misc]
        self.arg_count = arg_count  # type: ignore[misc]
        self.inline = inline  # type: ignore[misc]
        self.reply = reply  # type: ignore[misc]
        self.__post_init__(_parsed)

    @property
    def expects_response(self) -> bool:
        return self.reply


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisResponse(Message):
    """A Redis reply."""

    @property
    def protocol(self) -> str:
        return "redis"

    @property
    def direction(self) -> Direction:
        return RESPONSE

    type: str
    error: str | None = None
    value: str | None = None
    length: int | None = None
    push: bool = False

    def __init__(  # pragma: no cover
        self, *, ts_ns: int, size: int = 0, errors: tuple[str, ...] = (), _parsed: bool = False,
        type: str, error: str | None = None, value: str | None = None,
        length: int | None = None, push: bool = False,
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.size = size  # type: ignore[misc]
        self.errors = errors  # type: ignore[misc]
        self.type = type  # type: ignore[misc]
        self.error = error  # type: ignore[misc]
        self.value = value  # type: ignore[misc]
        self.length = length  # type: ignore[misc]
        self.push = push  # type: ignore[misc]
        self.__post_init__(_parsed)

    @property
    def expects_response(self) -> bool:
        return not self.push

    @property
    def outcome(self) -> Status:
        if self.error is None:
            return Status.OK
        prefix = self.error.split(" ", 1)[0]
        return Status.CLIENT_ERROR if prefix in CLIENT_ERROR_PREFIXES else Status.SERVER_ERROR


hand_init(RedisRequest, RedisResponse)

#: The kinds whose line is a byte length (the bytes follow), and all those
#: whose line is a count (of bytes, or of the elements that follow).
_BLOBS = frozenset({"bulk_string", "blob_error", "verbatim_string"})
_COUNTED = _BLOBS | {"array", "map", "set", "push", "attribute"}


def _integer(line: bytes | bytearray) -> int:
    # isdigit() (ASCII digits only, for bytes) passes the common lengths
    # cheaply; the pattern then settles signs, and keeps int() from taking
    # what RESP does not ("+1", " 1", "1_0").
    if line.isdigit() and len(line) <= 20:
        return int(line)
    if not _INTEGER.fullmatch(line):
        raise MalformedError(f"invalid RESP integer {bytes(line[:24])!r}")
    return int(line)


def _line(buf: bytearray, pos: int) -> tuple[bytearray, int]:
    """The line at ``buf[pos]`` (a copy) and the offset past its CRLF."""
    end = buf.find(b"\r\n", pos, pos + MAX_RESP_LINE_BYTES + 2)
    if end < 0:
        if len(buf) - pos > MAX_RESP_LINE_BYTES:
            raise LimitExceededError(f"RESP line longer than {MAX_RESP_LINE_BYTES} bytes")
        raise _Incomplete
    return buf[pos:end], end + 2


def parse_value(buf: bytearray, pos: int = 0, depth: int = 0) -> tuple[_Value, int]:
    """Parse one RESP2/RESP3 value at ``buf[pos]``; return it and the end offset.

    Raises:
        _Incomplete: the buffer ends inside the value.
        MalformedError, LimitExceededError: the bytes are not RESP, or exceed limits.
    """
    if depth > MAX_RESP_DEPTH:
        raise LimitExceededError(f"RESP nested deeper than {MAX_RESP_DEPTH}")
    whole, aggregate = _head(buf, pos)
    if aggregate is None:
        return whole
    return _elements(buf, aggregate, depth)


class _Aggregate:
    """An array, map, set, push or attribute being read: what is left of it."""

    __slots__ = ("count", "elements", "kept", "kind", "pos")

    def __init__(self, kind: str, count: int, pos: int) -> None:
        self.kind = kind
        self.count = count
        #: elements still to read (a map's count is of pairs)
        self.elements = count * 2 if kind in ("map", "attribute") else count
        #: offset of the next element
        self.pos = pos
        self.kept: list[_Value] = []


def _head(buf: bytearray, pos: int) -> tuple[tuple[_Value, int], _Aggregate | None]:
    """The value at ``buf[pos]`` and its end if its head holds it whole, else
    (a placeholder and) the aggregate whose elements follow."""
    if pos >= len(buf):
        raise _Incomplete
    kind = TYPES.get(buf[pos])
    if kind is None:
        raise MalformedError(f"unknown RESP type byte {bytes(buf[pos:pos + 1])!r}")
    line, pos = _line(buf, pos + 1)
    if kind not in _COUNTED:
        return (_line_value(kind, line), pos), None
    count = _integer(line)
    if count == -1 and kind in ("bulk_string", "array"):  # RESP2's null
        return (_Value("null"), pos), None
    if count < 0:
        raise MalformedError(f"negative {kind} length {count}")
    if kind in _BLOBS:
        if count > MAX_MESSAGE_BYTES:
            raise LimitExceededError(f"{kind} of {count} bytes")
        end = pos + count
        if len(buf) < end + 2:
            raise _Incomplete
        if not buf.startswith(b"\r\n", end):
            raise MalformedError(f"{kind} not terminated by CRLF")
        return (_Value(kind, bytes(buf[pos:end])), end + 2), None
    return (_NO_VALUE, pos), _Aggregate(kind, count, pos)


_NO_VALUE = _Value("")


def _elements(buf: bytearray, aggregate: _Aggregate, depth: int) -> tuple[_Value, int]:
    """Read the rest of ``aggregate``; cut short (:class:`_Incomplete`), it keeps
    the elements read, so that reading it on later goes on from there."""
    while aggregate.elements:
        item, aggregate.pos = parse_value(buf, aggregate.pos, depth + 1)
        aggregate.elements -= 1
        if len(aggregate.kept) < MAX_ARGS_KEPT:
            aggregate.kept.append(item)
    if aggregate.kind == "attribute":  # metadata about the value that follows it
        return parse_value(buf, aggregate.pos, depth)
    return _Value(aggregate.kind, None, tuple(aggregate.kept), aggregate.count), aggregate.pos


#: Commands of at most this many words (all kept) take the fast path.
_FAST_WORDS: Final = MAX_ARGS_KEPT
#: The limits the fast readers check, as Final names: compiled, a module name
#: that is not Final is a dictionary lookup at every use (eight per command).
_MAX_BULK: Final = MAX_MESSAGE_BYTES
_MAX_LINE: Final = MAX_RESP_LINE_BYTES
_MAX_TEXT: Final = MAX_FIELD_CHARS
#: The fast readers read at most this many bytes of the buffer, as ``bytes``
#: (compiled, a bytes index is a C array read; a bytearray's goes through the
#: generic item protocol and makes an int object): a longer command or reply
#: takes the general reader.
_FAST_WINDOW: Final = 1024
_DOLLAR: Final = ord("$")
_ASTERISK: Final = ord("*")
_PLUS: Final = ord("+")
_MINUS: Final = ord("-")
_CR: Final = ord("\r")
_LF: Final = ord("\n")
_ZERO: Final = ord("0")


#: The fast readers' limits, their last argument: (words, bytes of a word,
#: characters of its text) and (bytes of a status line, of a bulk string,
#: characters of the text).  One tuple object: compiled, each int argument
#: above 256 would be a new int object per call.
_COMMAND_LIMITS: Final[object] = (_FAST_WORDS, _MAX_BULK, _MAX_TEXT)
_REPLY_LIMITS: Final[object] = (_MAX_LINE, _MAX_BULK, _MAX_TEXT)
Limits = tuple[int, int, int]

#: The readers below compiled (_respscan.c), or None where there are none:
#: (data, base, limits) → what _command_python or _reply_python returns.
_scan = native.respscan()
_NATIVE_COMMAND: Final[Callable[[bytes, int, object], tuple[list[str], int] | None] | None] = (
    _scan.command if _scan is not None else None
)
_NATIVE_REPLY: Final[Callable[[bytes, int, object], tuple[str, str, int] | None] | None] = (
    _scan.reply if _scan is not None else None
)


def _command(side: Side) -> tuple[list[str], int] | None:
    """A command as clients send it (an array of bulk strings) at ``buf[0]``:
    its words (as record text) and the offset past it; see :func:`_command_python`."""
    if side.size() < 4 or side.first() != _ASTERISK:
        return None
    data, base = _window(side)
    if _NATIVE_COMMAND is not None:
        return _NATIVE_COMMAND(data, base, _COMMAND_LIMITS)
    return _command_python(data, base, cast(Limits, _COMMAND_LIMITS))


def _command_python(data: bytes, base: int, limits: Limits) -> tuple[list[str], int] | None:
    """:func:`_command` of ``data[base:]``, read byte by byte: ``limits`` are
    the most words, bytes of a word and characters of its text.

    None for anything else, or for a command not yet whole: :func:`parse_value`
    then decides (and raises what it finds), so what this returns is always
    what the general reader would give.  Most records are commands of a few
    words, and the general reader's calls per value and per line were most of
    the parse (``benchmarks/records.py``'s profile); compiled, indexing and
    digit arithmetic here cost a third of the finds and slices they replace.
    """
    max_words, max_bulk, max_text = limits
    size = len(data)
    count, pos = _number(data, base + 1, 2)
    if not 0 < count <= max_words:
        return None
    words: list[str] = []
    for _ in range(count):
        if pos >= size or data[pos] != _DOLLAR:
            return None
        length, start = _number(data, pos + 1, 9)
        if length < 0 or length > max_bulk:
            return None
        end = start + length
        if end + 1 >= size or data[end] != _CR or data[end + 1] != _LF:  # also: not all here yet
            return None
        words.append(_word(data[start:end], max_text))
        pos = end + 2
    return words, pos - base


def _reply(side: Side) -> tuple[str, str, int] | None:
    """A simple string, error or bulk string at ``buf[0]`` (most replies): its kind,
    its record text and the offset past it; see :func:`_reply_python`."""
    if side.size() < 3:
        return None
    first = side.first()
    if first not in (_PLUS, _MINUS, _DOLLAR):
        return None
    data, base = _window(side)
    if _NATIVE_REPLY is not None:
        return _NATIVE_REPLY(data, base, _REPLY_LIMITS)
    return _reply_python(data, base, cast(Limits, _REPLY_LIMITS))


def _reply_python(data: bytes, base: int, limits: Limits) -> tuple[str, str, int] | None:
    """:func:`_reply` of ``data[base:]``, read as :func:`_command_python` reads:
    ``limits`` are the most bytes of a status line, of a bulk string and
    characters of the text.

    None for anything else (other kinds, a null, a line or string not yet
    whole): :func:`parse_value` then decides, so what this returns is always
    what the general reader and :meth:`RedisParser._response` would make of it.
    """
    max_line, max_bulk, max_text = limits
    size = len(data)
    first = data[base]
    if first in (_PLUS, _MINUS):
        # By index, not data.find: compiled, a method call with arguments costs
        # more than scanning the few bytes of a status line.
        end = base + 1
        last = min(size - 1, base + max_line + 2)  # data.find(b"\r\n", 1, MAX + 3)
        while end < last and not (data[end] == _CR and data[end + 1] == _LF):
            end += 1
        if end >= last:
            return None
        text = _word(data[base + 1:end], max_text)
        return ("simple_string" if first == _PLUS else "error"), text, end + 2 - base
    if first != _DOLLAR:
        return None
    length, start = _number(data, base + 1, 9)
    if length < 0 or length > max_bulk:
        return None
    end = start + length
    if end + 1 >= size or data[end] != _CR or data[end + 1] != _LF:
        return None
    return "bulk_string", _word(data[start:end], max_text), end + 2 - base


def _window(side: Side) -> tuple[bytes, int]:
    """``(data, base)``: ``data[base:]`` starts with at least the first
    :data:`_FAST_WINDOW` bytes of ``side.buf`` (or all of them), as bytes: the
    chunk they came in while the buffer holds only it, else a copy."""
    if side.head is not None:
        return side.head, side.head_at
    buf = side.buf
    return bytes(buf[:_FAST_WINDOW]) if len(buf) > _FAST_WINDOW else bytes(buf), 0


def _word(data: bytes, max_text: int) -> str:
    """:func:`_text` of bytes (cut to ``max_text`` characters), strict UTF-8
    first (compiled, decoded in C; :func:`_text` takes any bytes-like, which is
    a method call)."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
    return text if len(text) <= max_text else clip(text, max_text)


def _number(buf: bytes, pos: int, digits: int) -> tuple[int, int]:
    """The decimal number of at most ``digits`` digits at ``buf[pos]``, followed by
    CRLF, and the offset past the CRLF; ``(-1, 0)`` for anything else."""
    size = len(buf)
    end = min(pos + digits, size)
    value = 0
    i = pos
    while i < end:
        digit = buf[i] - _ZERO  # each byte read once: compiled, an index is a call
        if not 0 <= digit <= 9:
            break
        value = value * 10 + digit
        i += 1
    if i == pos or i + 1 >= size or buf[i] != _CR or buf[i + 1] != _LF:
        return -1, 0
    return value, i + 2


_SPACE = frozenset(b" \n\r\t\v\f")
_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX = frozenset(b"0123456789abcdefABCDEF")


def split_inline(line: bytes) -> list[bytes] | None:
    """The words of an inline command as Redis splits them (``sdssplitargs``):
    double quotes with ``\\n``-style and ``\\xHH`` escapes, single quotes with
    ``\\'``, quotes anywhere in a word; None for unbalanced quotes (or a closing
    quote not followed by a space), which Redis answers with a protocol error."""
    words: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return words
        word, quote = bytearray(), 0
        while True:
            if quote:
                if i >= n:
                    return None  # unterminated quotes
                c = line[i]
                if quote == 0x22 and c == 0x5C and i + 3 < n and line[i + 1] == 0x78 and (
                        line[i + 2] in _HEX and line[i + 3] in _HEX):
                    word.append(int(line[i + 2:i + 4], 16))
                    i += 3
                elif quote == 0x22 and c == 0x5C and i + 1 < n:
                    i += 1
                    word.append(_ESCAPES.get(line[i], line[i]))
                elif quote == 0x27 and c == 0x5C and i + 1 < n and line[i + 1] == 0x27:
                    i += 1
                    word.append(0x27)
                elif c == quote:
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None  # a closing quote must end the word
                    i += 1
                    break
                else:
                    word.append(c)
            else:
                if i >= n or line[i] in _SPACE:
                    break
                if line[i] in (0x22, 0x27):
                    quote = line[i]
                else:
                    word.append(line[i])
            i += 1
        words.append(bytes(word))


def _line_value(kind: str, line: bytearray) -> _Value:
    """A value that its line holds whole (a simple string, integer, null, boolean...)."""
    if kind == "integer":
        return _Value(kind, str(_integer(line)).encode())
    if kind == "null":
        if line:
            raise MalformedError("RESP3 null with a payload")
        return _Value(kind)
    data = bytes(line)
    if kind == "boolean" and data not in (b"t", b"f"):
        raise MalformedError(f"invalid RESP3 boolean {data[:8]!r}")
    return _Value(kind, data)


def _text(data: bytes | bytearray | None) -> str:
    text = data.decode("utf-8", "replace") if data else ""
    return text if len(text) <= MAX_FIELD_CHARS else clip(text)


@mypyc_attr(allow_interpreted_subclasses=True)  # see libtrace/compiled.py
class RedisParser(StreamParser):
    """Redis (RESP2, RESP3, inline commands) over TCP."""

    protocol = "redis"
    idle_when_empty = True  # _parse: nothing of no bytes

    def __init__(self, *, transport: Transport = "tcp", mid_stream: bool = False) -> None:
        super().__init__(transport=transport, mid_stream=mid_stream)
        self._subscribed = False
        #: MONITOR was sent: the server streams every command it runs, unasked
        self._monitoring = False
        #: CLIENT REPLY's mode: ON, OFF, or SKIP (the next command is not answered)
        self._reply_mode = "ON"
        #: per direction: the aggregate at the start of the buffer that the bytes
        #: so far cut short, with the stream offset it starts at (see _value)
        self._cut: dict[Direction, tuple[int, _Aggregate]] = {}

    def _resync(self, side: Side) -> bool:
        buf = side.buf
        starts = (b"*",) if side.direction is REQUEST else tuple(
            bytes([t]) for t in TYPES)
        pos = 0
        while pos < len(buf):
            # At a line's start: after "\r\n", or after a lone "\n" where the cut fell
            # between the two bytes of one.
            if buf[pos:pos + 1] in starts and (pos == 0 or buf[pos - 1:pos] == b"\n"):
                try:
                    parse_value(buf, pos)
                except _Incomplete:
                    side.consume(pos)
                    return True
                except (MalformedError, LimitExceededError):
                    pass
                else:
                    side.consume(pos)
                    return True
            nxt = buf.find(b"\n", pos)
            if nxt < 0:
                break
            pos = nxt + 1
        return False

    def _parse(self, side: Side) -> Message | None:
        first = side.first()  # not side.buf: the fast readers read a lazy head in place
        if first < 0:
            return None
        request = side.direction is REQUEST
        if request and first != _ASTERISK and first not in TYPES:
            return self._inline(side, side.ts_at(0))
        if request:
            command = _command(side)
            if command is not None:
                words, end = command
                ts = side.ts_at(0)
                side.consume(end)
                return self._command_request(words, len(words), ts, end)
        elif not self._subscribed and not self._monitoring:  # no reply is a push then
            reply = _reply(side)
            if reply is not None:
                kind, text, end = reply
                ts = side.ts_at(0)
                side.consume(end)
                error = kind == "error"
                return RedisResponse(ts_ns=ts, size=end, type=kind, error=text if error else None,
                                     value=None if error else text, _parsed=True)  # fmt: skip
        try:
            value, end = self._value(side)
        except _Incomplete:
            return None
        ts = side.ts_at(0)
        side.consume(end)
        if request:
            return self._request(value, ts, end)
        return self._response(value, ts, end)

    def _value(self, side: Side) -> tuple[_Value, int]:
        """:func:`parse_value` at the start of the buffer, resumed where the last
        call was cut short: an array arriving in many pieces is read once, not
        from its start again for every piece (a 160 KB reply in 1460-byte
        segments took 2.3 s of CPU, and grew with the square of its size; found
        by tox -e fuzz-deep).  The elements are read in the same order, so an
        error is raised at the same byte as by a reading from the start."""
        cut = self._cut.pop(side.direction, None)
        if cut is not None and cut[0] == side.consumed:
            aggregate = cut[1]
        else:
            whole, found = _head(side.buf, 0)
            if found is None:
                return whole
            aggregate = found
        try:
            return _elements(side.buf, aggregate, 0)
        except _Incomplete:
            self._cut[side.direction] = (side.consumed, aggregate)
            raise

    def _inline(self, side: Side, ts: int) -> Message | None:
        end = side.buf.find(b"\n", 0, MAX_RESP_LINE_BYTES + 1)
        if end < 0:
            if len(side.buf) > MAX_RESP_LINE_BYTES:
                raise LimitExceededError("inline command too long")
            return None
        line = bytes(side.buf[:end])
        side.consume(end + 1)
        words = split_inline(line)
        errors: tuple[str, ...] = ()
        if words is None:  # Redis answers "Protocol error: unbalanced quotes in request"
            words, errors = line.split(), ("unbalanced quotes in an inline command",)
        if not words:
            return None  # an empty line is ignored by Redis too
        if not all(0x20 < b < 0x7F for b in words[0]):
            raise MalformedError(f"invalid inline command {words[0][:16]!r}")
        kept = [_text(w) for w in words[:1 + MAX_ARGS_KEPT]]
        return self._command_request(kept, len(words), ts, end + 1, inline=True, errors=errors)

    def _request(self, value: _Value, ts: int, size: int) -> Message:
        if value.type != "array" or not value.items:
            raise MalformedError(f"a command must be a non-empty array, not {value.type}")
        words = []
        for item in value.items:
            if item.type != "bulk_string":
                raise MalformedError("command arguments must be bulk strings")
            words.append(_text(item.data))
        return self._command_request(words, value.length or 1, ts, size)

    def _command_request(
        self, words: list[str], count: int, ts: int, size: int, *, inline: bool = False,
        errors: tuple[str, ...] = (),
    ) -> Message:  # fmt: skip
        """The request of a command whose first words are ``words``, of ``count`` in all."""
        command = words[0].upper()
        # The length first: compiled, it is a field read, where the set lookup
        # hashes the new string (most commands, GET and SET, are shorter).
        self._subscribed |= len(command) >= _SUBSCRIBE_MIN and command in _SUBSCRIBE
        self._monitoring |= command == "MONITOR"
        return RedisRequest(ts_ns=ts, size=size, command=command, args=tuple(words[1:]),
                            arg_count=count - 1, inline=inline, reply=self._reply(command, words),
                            errors=errors, _parsed=True)

    def _reply(self, command: str, words: list[str]) -> bool:
        """Whether the server answers this command, following CLIENT REPLY: OFF
        silences every reply until ON, SKIP the next command's, and neither OFF
        nor SKIP is answered itself (ON is, with OK).  ``command``: the first
        word, upper-cased."""
        mode = self._reply_mode
        if mode == "SKIP":
            self._reply_mode = "ON"
        if command == "CLIENT" and len(words) >= 3 and words[1].upper() == "REPLY":
            asked = words[2].upper()
            if asked in ("ON", "OFF", "SKIP"):
                self._reply_mode = asked
                return asked == "ON"
        return mode == "ON"

    def _response(self, value: _Value, ts: int, size: int) -> Message:
        # RESP3 sends a (un)subscribe confirmation as a push, but it is that command's
        # reply (one per channel named: the first answers the command).
        kind = _text(value.items[0].data) if value.items else ""
        confirmation = value.type == "push" and kind in _CONFIRMATIONS
        push = (value.type == "push" and not confirmation) or (
            self._subscribed and value.type == "array" and bool(value.items)
            and _text(value.items[0].data) in _PUBSUB_KINDS) or (
            self._monitoring and value.type == "simple_string"
            and _MONITOR_LINE.match(value.data or b"") is not None)
        error = _text(value.data) if value.type in ("error", "blob_error") else None
        scalar = value.data is not None and error is None
        return RedisResponse(ts_ns=ts, size=size, type=value.type, error=error,
                             value=_text(value.data) if scalar else None,
                             length=value.length, push=push, _parsed=True)


# Inference: whether a direction's first bytes are this protocol's.

_RESP_COMMAND = re.compile(rb"\*[1-9]\d{0,6}\r\n\$\d{1,9}\r\n[A-Za-z]")
_RESP_REPLY = re.compile(rb"(?:\+[\x20-\x7e]*|-[A-Z]+ [\x20-\x7e]*|:-?\d+|\$-?\d+|\*-?\d+"
                         rb"|%\d+|_|#[tf]|,[\d.e+-]+)\r\n")
_INLINE = re.compile(rb"(?i:PING|QUIT|INFO|HELLO|AUTH)(?: [\x20-\x7e]*)?\r?\n")


def _signature(data: bytes, udp: bool) -> Match:
    if udp:
        return None
    if _RESP_COMMAND.match(data):
        return 0.9, REQUEST
    if _INLINE.fullmatch(data):
        return 0.5, REQUEST
    if _RESP_REPLY.match(data):
        return 0.4, RESPONSE
    return None


# What libtrace knows of the protocol (see _spec.py): its signature for
# inference, above, and the rest.
#: CONFIG SET parameters whose values are credentials.
_SECRET_CONFIG = frozenset({"requirepass", "masterauth", "masteruser"})


#: The commands that may carry credentials (see _secret_args).
_SECRET_COMMANDS: Final = frozenset({"AUTH", "HELLO", "MIGRATE", "CONFIG", "ACL"})


def _secret_args(command: str, args: tuple[str, ...]) -> set[int]:
    """Indexes of ``args`` that carry credentials."""
    if command not in _SECRET_COMMANDS:
        return set()  # most commands: no word of theirs needs looking at
    upper = [arg.upper() for arg in args]
    if command == "AUTH":
        return {len(args) - 1} if args else set()  # AUTH [username] password
    if command == "HELLO" and "AUTH" in upper:  # HELLO protover AUTH username password
        return {upper.index("AUTH") + 2}
    if command == "MIGRATE":
        if "AUTH2" in upper:  # ... AUTH2 username password
            return {upper.index("AUTH2") + 2}
        if "AUTH" in upper:  # ... AUTH password
            return {upper.index("AUTH") + 1}
    if command == "CONFIG" and upper[:1] == ["SET"]:  # CONFIG SET name value [name value ...]
        return {i + 1 for i in range(1, len(args), 2) if args[i].lower() in _SECRET_CONFIG}
    if command == "ACL" and upper[:1] == ["SETUSER"]:  # >password, #hash, <password
        return {i for i, arg in enumerate(args) if i > 1 and arg[:1] in (">", "#", "<")}
    return set()


def redact(message: Message, redaction: Redaction) -> Message:
    """AUTH, HELLO ... AUTH, MIGRATE ... AUTH/AUTH2, CONFIG SET requirepass/masterauth
    and ACL SETUSER passwords, replaced."""
    if not isinstance(message, RedisRequest) or not message.args:
        return message
    if message.command not in _SECRET_COMMANDS:
        return message  # most commands: before any set is made (a call per request)
    secret = {i for i in _secret_args(message.command, message.args) if i < len(message.args)}
    if not secret:
        return message
    args = tuple(redaction.secret(arg) or "" if i in secret else arg
                 for i, arg in enumerate(message.args))  # fmt: skip
    return dataclasses.replace(message, args=args)


SPEC = ProtocolSpec(
    name="redis",
    title="Redis",
    parser=RedisParser,
    signature=_signature,
    ports=frozenset({6379, 6380}),
    request_summary=("command", "args"),
    response_summary=("value|error|type",),
    redact=redact,
)

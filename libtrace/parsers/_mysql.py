"""MySQL/MariaDB client/server protocol over TCP: handshake, text and prepared commands.

Theory of operation: both directions are sequences of packets — a 3-byte
little-endian length, a sequence id and a payload.  A payload of 0xFFFFFF
bytes continues in the next packet, which is skipped.  Only the first
:data:`MAX_PACKET_PREFIX_BYTES` of a payload are read; the rest is skipped,
so huge queries and rows cost nothing.

Requests are simple: in the command phase a packet with sequence id 0 is a
command (:class:`Command`); any other client packet continues an exchange
(authentication data, ``LOAD DATA LOCAL`` content) and is absorbed.  Before
that, the client's packet with sequence id 1 is the login request (or an SSL
request: the rest of the connection is TLS and is skipped).

Responses depend on the command, so the parser is connection-level: each
command that expects a response is queued, and the response side parses one
packet per step through a small stage machine (:class:`_Answer` ``stage``:
start, defs, eof?, rows) until the response is complete — OK, ERR, EOF, a
result set (column count, column definitions, an EOF unless
CLIENT_DEPRECATE_EOF, rows, and a terminating EOF or OK; more follow while
SERVER_MORE_RESULTS_EXISTS is set) or a COM_STMT_PREPARE answer.  Whether
the EOF after definitions is sent is read from the capability flags of the
greeting and the login request when both were seen; otherwise it is inferred
from the first packet after the definitions (a 5-byte EOF, not a 7+-byte OK
or a row).  A packet that turns out to start the next response is replayed
into it.  The handshake's auth switch and
extra auth packets are absorbed; the login request pairs with the final OK or
ERR.  The greeting is emitted alone.  Pairing is in order (FIFO).

The compressed protocol (CLIENT_COMPRESS in both the greeting and the login)
starts after the login's OK: from there each direction is a sequence of
compressed packets (a 3-byte length, a sequence id, the 3-byte length of the
uncompressed payload, 0 where it was sent as it is), each one zlib stream of
whole or partial packets of the protocol above.  :class:`_Inflater` turns
them back into that stream before the base class buffers it.  With
CLIENT_ZSTD_COMPRESSION_ALGORITHM (MySQL 8.0.18+) each compressed packet is
one zstd frame instead, read with the ``zstandard`` module; where it is not
installed such a connection says so and is skipped from there.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib.util
import struct
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mypy_extensions import mypyc_attr

from ..frozen import hand_init
from ._base import SKIP_TO_EOF, Side, StreamParser, Transport
from ._cursor import Cursor
from ._enums import open_enum
from ._errors import MalformedError, TruncatedError
from ._events import REQUEST, RESPONSE, Direction, Message, Status, clip
from ._limits import MAX_ARGS_KEPT, MAX_PENDING_REQUESTS
from ._spec import PRINTABLE, Match, ProtocolSpec
from .redaction import Redaction

#: Payload bytes of one packet that are buffered and read (enough for any
#: OK/ERR/EOF, greeting, login or column definition, and for a query's
#: first 64 KiB); the rest of a packet is skipped.
MAX_PACKET_PREFIX_BYTES = 64 * 1024
#: Column count beyond which a "result set" header is taken as corrupt
#: (MySQL allows 4096 columns per table, and a join somewhat more).
MAX_COLUMNS = 1 << 16
#: A payload of this length continues in the next packet.
CONTINUED = 0xFFFFFF
#: Capability flags (``CLIENT_*``) the parser reads.
CLIENT_CONNECT_WITH_DB = 1 << 3
CLIENT_PROTOCOL_41 = 1 << 9
CLIENT_COMPRESS = 1 << 5
CLIENT_SSL = 1 << 11
CLIENT_SECURE_CONNECTION = 1 << 15
CLIENT_PLUGIN_AUTH_LENENC_DATA = 1 << 21
CLIENT_DEPRECATE_EOF = 1 << 24
CLIENT_ZSTD_COMPRESSION_ALGORITHM = 1 << 26
#: zstandard (a dependency of the package) reads zstd-compressed connections.
_HAVE_ZSTD = importlib.util.find_spec("zstandard") is not None
CLIENT_QUERY_ATTRIBUTES = 1 << 27
#: COM_STMT_PREPARE_OK: status, statement id, columns, params, filler, warnings.
PREPARE_OK_BYTES = 12

#: Binary-protocol value sizes by field type (MYSQL_TYPE_*): fixed widths, and
#: the temporal types whose value starts with its own length byte.  Every other
#: type's value is a length-encoded string.
_FIXED_VALUE_BYTES = {1: 1, 2: 2, 13: 2, 3: 4, 9: 4, 4: 4, 8: 8, 5: 8, 6: 0}
_TEMPORAL_TYPES = frozenset({7, 10, 11, 12})
#: Status flag: another result follows this one.
SERVER_MORE_RESULTS_EXISTS = 0x0008
#: Error codes that are the server's trouble (out of memory or disk, too many
#: connections, shutdown, lock wait timeout, deadlock, interrupted); every
#: other error blames the statement.
SERVER_ERRORS = frozenset({1021, 1037, 1038, 1040, 1041, 1053, 1152, 1184, 1205, 1213,
                           1317, 2006, 2013, 3024})


@open_enum
class Command(enum.IntEnum):
    """Command bytes (``COM_*``), plus two pseudo-commands for the handshake."""

    COM_SLEEP = 0x00
    COM_QUIT = 0x01
    COM_INIT_DB = 0x02
    COM_QUERY = 0x03
    COM_FIELD_LIST = 0x04
    COM_CREATE_DB = 0x05
    COM_DROP_DB = 0x06
    COM_REFRESH = 0x07
    COM_SHUTDOWN = 0x08
    COM_STATISTICS = 0x09
    COM_PROCESS_INFO = 0x0A
    COM_CONNECT = 0x0B
    COM_PROCESS_KILL = 0x0C
    COM_DEBUG = 0x0D
    COM_PING = 0x0E
    COM_TIME = 0x0F
    COM_DELAYED_INSERT = 0x10
    COM_CHANGE_USER = 0x11
    COM_BINLOG_DUMP = 0x12
    COM_TABLE_DUMP = 0x13
    COM_CONNECT_OUT = 0x14
    COM_REGISTER_SLAVE = 0x15
    COM_STMT_PREPARE = 0x16
    COM_STMT_EXECUTE = 0x17
    COM_STMT_SEND_LONG_DATA = 0x18
    COM_STMT_CLOSE = 0x19
    COM_STMT_RESET = 0x1A
    COM_SET_OPTION = 0x1B
    COM_STMT_FETCH = 0x1C
    COM_DAEMON = 0x1D
    COM_BINLOG_DUMP_GTID = 0x1E
    COM_RESET_CONNECTION = 0x1F
    COM_STMT_BULK_EXECUTE = 0xFA  # MariaDB
    #: not a wire byte: the handshake response (login) of the client
    LOGIN = 0x100
    #: not a wire byte: the client asked for TLS
    SSL_REQUEST = 0x101


#: Commands the server does not answer.
NO_RESPONSE = frozenset({Command.COM_QUIT, Command.COM_STMT_CLOSE,
                         Command.COM_STMT_SEND_LONG_DATA, Command.SSL_REQUEST})
#: Commands whose argument is text (the record's ``query``).
TEXT_COMMANDS = frozenset({Command.COM_QUERY, Command.COM_STMT_PREPARE})
SCHEMA_COMMANDS = frozenset({Command.COM_INIT_DB, Command.COM_CREATE_DB, Command.COM_DROP_DB})
STATEMENT_COMMANDS = frozenset({Command.COM_STMT_EXECUTE, Command.COM_STMT_CLOSE,
                                Command.COM_STMT_RESET, Command.COM_STMT_SEND_LONG_DATA,
                                Command.COM_STMT_FETCH, Command.COM_STMT_BULK_EXECUTE})
#: Commands that may answer with a result set.
RESULTSET_COMMANDS = frozenset({Command.COM_QUERY, Command.COM_STMT_EXECUTE,
                                Command.COM_PROCESS_INFO, Command.COM_STMT_BULK_EXECUTE})
#: Commands answered by rows without a column count (column definitions for
#: COM_FIELD_LIST, binary rows for COM_STMT_FETCH) up to an EOF.
ROWS_ONLY_COMMANDS = frozenset({Command.COM_FIELD_LIST, Command.COM_STMT_FETCH})
#: Commands whose answer may be an authentication exchange.
AUTH_COMMANDS = frozenset({Command.LOGIN, Command.COM_CHANGE_USER})


@dataclass(frozen=True, slots=True, kw_only=True)
class MysqlRequest(Message):
    """A command (or the login request)."""

    @property
    def protocol(self) -> str:
        return "mysql"

    @property
    def _not_fields(self) -> frozenset[str]:
        return frozenset({"ts_ns", "size", "errors", "attributes"})

    command: Command
    query: str | None = None
    statement_id: int | None = None
    database: str | None = None
    user: str | None = None
    #: COM_QUERY's query attributes (MySQL 8.0.23+), as (name, value) pairs;
    #: in the record an ``attributes`` object, present only when there are some
    attributes: tuple[tuple[str, AttributeValue], ...] = ()

    def __init__(  # pragma: no cover
        self, *, ts_ns: int, size: int = 0, errors: tuple[str, ...] = (), _parsed: bool = False,
        command: Command, query: str | None = None, statement_id: int | None = None,
        database: str | None = None, user: str | None = None,
        attributes: tuple[tuple[str, AttributeValue], ...] = (),
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.size = size  # type: ignore[misc]
        self.errors = errors  # type: ignore[misc]
        self.command = command  # type: ignore[misc]
        self.query = query  # type: ignore[misc]
        self.statement_id = statement_id  # type: ignore[misc]
        self.database = database  # type: ignore[misc]
        self.user = user  # type: ignore[misc]
        self.attributes = attributes  # type: ignore[misc]
        self.__post_init__(_parsed)

    @property
    def expects_response(self) -> bool:
        return self.command not in NO_RESPONSE

    def fields(self) -> dict[str, Any]:
        out = Message.fields(self)
        if self.attributes:
            out["attributes"] = dict(self.attributes)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class MysqlResponse(Message):
    """The whole answer to one command (all packets of a result set)."""

    @property
    def protocol(self) -> str:
        return "mysql"

    @property
    def direction(self) -> Direction:
        return RESPONSE

    #: "ok", "error", "resultset", "eof", or "greeting" (the server's first packet)
    kind: str
    error_code: int | None = None
    error_message: str | None = None
    sql_state: str | None = None
    affected_rows: int | None = None
    last_insert_id: int | None = None
    rows: int | None = None
    columns: int | None = None
    warnings: int | None = None
    statement_id: int | None = None
    params: int | None = None
    server_version: str | None = None
    info: str | None = None

    def __init__(  # pragma: no cover
        self, *, ts_ns: int, size: int = 0, errors: tuple[str, ...] = (), _parsed: bool = False,
        kind: str, error_code: int | None = None, error_message: str | None = None,
        sql_state: str | None = None, affected_rows: int | None = None,
        last_insert_id: int | None = None, rows: int | None = None, columns: int | None = None,
        warnings: int | None = None, statement_id: int | None = None, params: int | None = None,
        server_version: str | None = None, info: str | None = None,
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.size = size  # type: ignore[misc]
        self.errors = errors  # type: ignore[misc]
        self.kind = kind  # type: ignore[misc]
        self.error_code = error_code  # type: ignore[misc]
        self.error_message = error_message  # type: ignore[misc]
        self.sql_state = sql_state  # type: ignore[misc]
        self.affected_rows = affected_rows  # type: ignore[misc]
        self.last_insert_id = last_insert_id  # type: ignore[misc]
        self.rows = rows  # type: ignore[misc]
        self.columns = columns  # type: ignore[misc]
        self.warnings = warnings  # type: ignore[misc]
        self.statement_id = statement_id  # type: ignore[misc]
        self.params = params  # type: ignore[misc]
        self.server_version = server_version  # type: ignore[misc]
        self.info = info  # type: ignore[misc]
        self.__post_init__(_parsed)

    @property
    def expects_response(self) -> bool:
        return self.kind != "greeting"

    @property
    def outcome(self) -> Status:
        if self.kind != "error":
            return Status.OK
        return Status.SERVER_ERROR if self.error_code in SERVER_ERRORS else Status.CLIENT_ERROR


hand_init(MysqlRequest, MysqlResponse)


def lenenc(cur: Cursor) -> int | None:
    """A length-encoded integer; ``None`` for the NULL marker 0xFB."""
    first = cur.u8()
    if first < 0xFB:
        return first
    if first == 0xFB:
        return None
    if first == 0xFC:
        return cur.u16le()
    if first == 0xFD:
        return cur.u24le()
    if first == 0xFE:
        return cur.u64le()
    raise MalformedError("0xFF is not a length-encoded integer")


#: A query attribute's value as a record shows it: integers and floats as
#: numbers, dates and times as ISO text, everything else as text; None: NULL.
AttributeValue = int | float | str | None
_INTEGER_TYPES = frozenset({1, 2, 3, 8, 9, 13})  # TINY, SHORT, LONG, LONGLONG, INT24, YEAR
_FLOAT_FORMATS = {4: "<f", 5: "<d"}  # FLOAT, DOUBLE


def _temporal(kind: int, data: bytes) -> str:
    """A binary-protocol DATE/DATETIME/TIMESTAMP (7, 10, 12) or TIME (11) as text."""
    if kind == 11:  # TIME: is_negative, days, hours, minutes, seconds[, microseconds]
        if len(data) < 8:
            return "00:00:00"
        negative, days = data[0], int.from_bytes(data[1:5], "little")
        clock = f"{days * 24 + data[5]:02d}:{data[6]:02d}:{data[7]:02d}"
        micros = int.from_bytes(data[8:12], "little") if len(data) >= 12 else 0
        return ("-" if negative else "") + clock + (f".{micros:06d}" if micros else "")
    year = int.from_bytes(data[0:2], "little") if len(data) >= 4 else 0
    month, day = (data[2], data[3]) if len(data) >= 4 else (0, 0)
    date = f"{year:04d}-{month:02d}-{day:02d}"
    if kind == 10:  # DATE
        return date
    hour, minute, second = (data[4], data[5], data[6]) if len(data) >= 7 else (0, 0, 0)
    micros = int.from_bytes(data[7:11], "little") if len(data) >= 11 else 0
    return f"{date} {hour:02d}:{minute:02d}:{second:02d}" + (f".{micros:06d}" if micros else "")


def _attribute_value(cur: Cursor, kind: int, unsigned: bool) -> AttributeValue:
    if kind in _INTEGER_TYPES:
        size = _FIXED_VALUE_BYTES[kind]
        return int.from_bytes(cur.bytes(size), "little", signed=not unsigned)
    if kind in _FLOAT_FORMATS:
        return float(struct.unpack(_FLOAT_FORMATS[kind], cur.bytes(_FIXED_VALUE_BYTES[kind]))[0])
    if kind == 6:  # MYSQL_TYPE_NULL
        return None
    if kind in _TEMPORAL_TYPES:
        return _temporal(kind, cur.bytes(cur.u8()))
    return clip(cur.bytes(lenenc(cur) or 0).decode("utf-8", "replace"))


def _query_attributes(cur: Cursor) -> tuple[tuple[str, AttributeValue], ...]:
    """COM_QUERY's attributes (MySQL 8.0.23+): counts, then (if any) the NULL
    bitmap, the types with the names, the values; the first MAX_ARGS_KEPT kept."""
    count = lenenc(cur) or 0
    lenenc(cur)  # parameter sets: always 1
    if count == 0:
        return ()
    nulls = cur.bytes((count + 7) // 8)
    if cur.u8() != 1:
        raise MalformedError("query attributes without their types")
    declared = []
    for _ in range(count):
        kind = cur.u16le()  # the high byte holds the unsigned flag
        name = cur.bytes(lenenc(cur) or 0).decode("utf-8", "replace")
        declared.append((clip(name), kind & 0xFF, bool(kind & 0x8000)))
    kept: list[tuple[str, AttributeValue]] = []
    for index, (name, kind, unsigned) in enumerate(declared):
        null = nulls[index // 8] & (1 << (index % 8))
        value = None if null else _attribute_value(cur, kind, unsigned)
        if len(kept) < MAX_ARGS_KEPT:
            kept.append((name, value))
    return tuple(kept)


@dataclass(slots=True)
class _Answer:
    """A response being assembled packet by packet."""

    command: Command | None
    ts: int
    #: "start", "defs" (definitions due), "eof?" (an EOF may follow them), "rows"
    stage: str = "start"
    #: what the definitions describe: "params", "columns" (prepare), "resultset"
    what: str = ""
    left: int = 0             #: definitions still due
    size: int = 0
    rows: int = 0
    columns: int = 0
    resultset: bool = False
    fields: dict[str, object] = field(default_factory=dict)


def _ends_at_a_packet(buf: bytearray, end: int) -> bool | None:
    """Whether a packet that would end at ``end`` ends the buffer there, or is
    followed by the header of another (a length, then a sequence id that starts
    a response or continues one): an OK or a ping is a handful of bytes that the
    inside of a cut packet passes for easily, its end in the right place much
    less.  None: the buffer does not reach that far yet."""
    if end == len(buf):
        return True
    if end + 4 > len(buf):
        return None
    return int.from_bytes(buf[end:end + 3], "little") > 0 and buf[end + 3] <= 3


def _query_so_far(buf: bytearray, pos: int) -> bool:
    """Whether a COM_QUERY's start at ``pos`` reads as SQL text (for one that
    does not end in the buffer yet: a long statement in several segments)."""
    text = bytes(buf[pos + 5:pos + 5 + 64])
    return len(text) >= 16 and text.isascii() and text.decode().isprintable()


def sql_after_attributes(payload: bytes) -> int | None:
    """Where the SQL starts in a COM_QUERY ``payload`` (command byte first) that begins
    with a well-formed query attributes block (MySQL 8.0.23+) followed by printable
    SQL; None when it does not read so.  SQL text never starts with a NUL byte or a
    small count, so a connection traced mid-stream is told by its bytes."""
    counts = Cursor(payload, 1)
    cur = Cursor(payload, 1)
    try:
        lenenc(counts)
        if lenenc(counts) != 1:  # the parameter-set count is always 1
            return None
        _query_attributes(cur)  # reads every value, so ``cur`` ends at the SQL
    except (MalformedError, TruncatedError, struct.error):
        return None
    sql = payload[cur.pos:cur.pos + 64]
    if not sql or not sql.isascii() or not sql.decode().isprintable():
        return None
    return cur.pos


def looks_like_login(payload: bytes) -> bool:
    """Whether a client's packet is a HandshakeResponse41 (the login), known by
    its shape where the greeting before it was not seen: capabilities with
    CLIENT_PROTOCOL_41, a max packet size, a character set, then 23 filler
    bytes, zero but for the last four, where MariaDB clients put their
    extended capabilities."""
    return (len(payload) >= 32 and bool(int.from_bytes(payload[:4], "little") & 0x200)
            and payload[8] != 0 and payload[9:28] == bytes(19))


#: Compressed packets longer than this are taken as corrupt (a packet carries
#: at most 16 MiB before compression).
MAX_COMPRESSED_BYTES = 1 << 24


def _zstd_decompressor() -> Callable[[bytes, int], bytes]:
    """One zstd frame at a time, with one decompressor for the whole direction."""
    import zstandard  # only for zstd-compressed connections (see _agreed_compression)

    decompressor = zstandard.ZstdDecompressor()

    def decompress(body: bytes, plain: int) -> bytes:
        try:
            return decompressor.decompress(body, max_output_size=plain + 1)
        except zstandard.ZstdError as exc:
            raise MalformedError(f"compressed packet: zstd: {exc}") from None

    return decompress


def _zlib_decompress(body: bytes, plain: int) -> bytes:
    try:
        return zlib.decompressobj().decompress(body, plain + 1)
    except zlib.error as exc:
        raise MalformedError(f"compressed packet: {exc}") from None


class _Inflater:
    """One direction of the compressed protocol back into plain packets (each compressed
    packet one zlib stream, or one zstd frame)."""

    def __init__(self, algorithm: str = "zlib") -> None:
        self._raw = bytearray()
        self._decompress = _zstd_decompressor() if algorithm == "zstd" else _zlib_decompress

    def feed(self, data: bytes) -> bytes:
        """The plain bytes of the compressed packets that ``data`` completes.

        Raises:
            MalformedError: a compressed packet that does not inflate to its length.
        """
        self._raw += data
        out = bytearray()
        raw = self._raw
        while len(raw) >= 7:
            size, plain = int.from_bytes(raw[:3], "little"), int.from_bytes(raw[4:7], "little")
            if size > MAX_COMPRESSED_BYTES or plain > MAX_COMPRESSED_BYTES:
                raise MalformedError(f"compressed packet of {size} bytes ({plain} plain)")
            if len(raw) < 7 + size:
                break
            body = bytes(raw[7:7 + size])
            del raw[:7 + size]
            if not plain:
                out += body  # sent as it is (short payloads)
                continue
            inner = self._decompress(body, plain)
            if len(inner) != plain:
                raise MalformedError(f"compressed packet inflates to {len(inner)} bytes, "
                                     f"not {plain}")  # fmt: skip
            out += inner
        return bytes(out)


@mypyc_attr(allow_interpreted_subclasses=True)  # see libtrace/compiled.py
class MysqlParser(StreamParser):
    """MySQL and MariaDB over TCP."""

    protocol = "mysql"

    def __init__(self, *, transport: Transport = "tcp", mid_stream: bool = False) -> None:
        super().__init__(transport=transport, mid_stream=mid_stream)
        self.server_caps: int | None = None
        self.client_caps: int | None = None
        #: CLIENT_DEPRECATE_EOF in force; None: not known yet
        self.deprecate_eof: bool | None = None
        self._handshake = not mid_stream
        self._tls = False
        self._expected: deque[Command] = deque()
        self._answer: _Answer | None = None
        self._ready: deque[Message] = deque()
        self._continued = {d: False for d in Direction}
        #: the compressed protocol, per direction, once the login's OK started it
        self._inflaters: dict[Direction, _Inflater] | None = None
        #: the login's OK was parsed with compression agreed ("zlib", "zstd"): switch
        #: after it
        self._compress_next: str | None = None

    # -- the compressed protocol -----------------------------------------------------------
    def feed(self, direction: Direction | str, data: bytes, ts_ns: int) -> None:
        if self._inflaters is None or not data:
            super().feed(direction, data, ts_ns)
            return
        side = self._sides[Direction(direction)]
        if side.skip == SKIP_TO_EOF:
            return
        try:
            plain = self._inflaters[side.direction].feed(data)
        except MalformedError as exc:
            self._unreadable(side, ts_ns, str(exc))
            return
        if plain:
            super().feed(direction, plain, ts_ns)

    def feed_gap(self, direction: Direction | str, size: int, ts_ns: int) -> None:
        if self._inflaters is None:
            super().feed_gap(direction, size, ts_ns)
            return
        # A compressed packet's bytes are missing: the next one's start is unknown.
        self._unreadable(self._sides[Direction(direction)], ts_ns, f"{size} bytes missing")

    def _unreadable(self, side: Side, ts_ns: int, why: str) -> None:
        side.consume(len(side.buf))
        side.desync(ts_ns, f"compressed protocol: {why}; the rest is not parsed")
        side.skip = SKIP_TO_EOF

    def _start_compression(self, ts_ns: int) -> None:
        """From the login's OK on: what either side buffered past it is compressed."""
        algorithm, self._compress_next = self._compress_next or "zlib", None
        self._inflaters = {d: _Inflater(algorithm) for d in Direction}
        for side in self._sides.values():
            rest = bytes(side.buf)
            side.consume(len(side.buf))
            if rest:
                self.feed(side.direction, rest, ts_ns)

    def _agreed_compression(self) -> str | None:
        """The compression both sides asked for ("zlib", "zstd"), or None."""
        both = (self.client_caps or 0) & (self.server_caps or 0)
        if both & CLIENT_COMPRESS:
            return "zlib"
        if both & CLIENT_ZSTD_COMPRESSION_ALGORITHM:
            return "zstd"
        return None

    # -- framing ---------------------------------------------------------------------------
    def _parse(self, side: Side) -> Message | None:
        if self._ready and side.direction is RESPONSE:
            return self._ready.popleft()
        buf = side.buf
        if len(buf) < 4:
            return None
        length, seq = int.from_bytes(buf[:3], "little"), buf[3]
        if self._tls and side.direction is RESPONSE and not (
                seq == 0 and buf[4:5] == b"\x0a"):
            side.skip = SKIP_TO_EOF  # TLS records from here on; a greeting may precede them
            return None
        want = min(length, MAX_PACKET_PREFIX_BYTES)
        if len(buf) < 4 + want:
            return None
        ts = side.ts_at(0)
        payload = bytes(buf[4:4 + want])
        message = None
        if not self._continued[side.direction]:  # else: the tail of a long payload, skipped
            # parse before consuming: on an error the resync starts inside this packet
            if side.direction is REQUEST:
                message = self._request(side, seq, payload, length, ts)
            else:
                message = self._response(seq, payload, length, ts)
        self._continued[side.direction] = length == CONTINUED
        side.consume(4 + want)
        if side.skip != SKIP_TO_EOF:
            side.skip = length - want
        if self._compress_next:
            self._start_compression(ts)
        return message

    # -- requests --------------------------------------------------------------------------
    def _request(self, side: Side, seq: int, payload: bytes, length: int,
                 ts: int) -> Message | None:
        if seq != 0:
            if (self._handshake or looks_like_login(payload)) and seq == 1 and not self._expected:
                return self._login(side, payload, length, ts)
            return None  # auth data or LOCAL INFILE content: part of an exchange
        self._handshake = False
        if not payload:
            raise MalformedError("empty command packet")
        cur = Cursor(payload)
        command = Command(cur.u8())
        query = database = statement = None
        attributes: tuple[tuple[str, AttributeValue], ...] = ()
        if command is Command.COM_QUERY and self._has_query_attributes(payload):
            attributes = _query_attributes(cur)
        errors: tuple[str, ...] = ()
        if command in TEXT_COMMANDS:
            text = cur.rest().decode("utf-8", "replace")
            query = clip(text)
            if query != text or length > len(payload):
                # The record says so: a cut statement must not pass for the whole one.
                kept = len(query) - (query != text)  # clip() ends with an ellipsis
                total = str(len(text)) if length == len(payload) else f"more than {len(text)}"
                errors = (f"query truncated: {kept} of {total} characters kept",)
        elif command in SCHEMA_COMMANDS:
            database = clip(cur.rest().decode("utf-8", "replace"))
        elif command in STATEMENT_COMMANDS:
            statement = cur.u32le()
        return self._push(MysqlRequest(ts_ns=ts, size=4 + length, command=command, query=query,
                                       database=database, statement_id=statement,
                                       attributes=attributes, errors=errors, _parsed=True))

    def _has_query_attributes(self, payload: bytes) -> bool:
        """Whether this COM_QUERY starts with query attributes (MySQL 8.0.23+).

        Both ends' capability flags say so once the handshake was seen.  Without
        it (a connection traced mid-stream) the payload tells: SQL text never
        starts with a NUL byte, and attributes start with their count (0 for
        none, the common case) and a parameter-set count that is always 1.
        """
        if self.client_caps is not None and self.server_caps is not None:
            return bool(self.client_caps & self.server_caps & CLIENT_QUERY_ATTRIBUTES)
        return sql_after_attributes(payload) is not None

    def _login(self, side: Side, payload: bytes, length: int, ts: int) -> Message:
        cur = Cursor(payload)
        caps = cur.u16le()
        if not caps & CLIENT_PROTOCOL_41:  # HandshakeResponse320
            cur.skip(3)
            name = clip(cur.cstring().decode("utf-8", "replace"))
            return self._push(MysqlRequest(ts_ns=ts, size=4 + length, command=Command.LOGIN,
                                           user=name, _parsed=True))
        caps |= cur.u16le() << 16
        self.client_caps = caps
        if self.server_caps is not None:
            self.deprecate_eof = bool(caps & self.server_caps & CLIENT_DEPRECATE_EOF)
        cur.skip(4 + 1 + 23)  # max packet, charset, filler
        if caps & CLIENT_SSL and not cur.remaining:
            side.skip = SKIP_TO_EOF  # the base steps over this packet, then everything
            self._tls = True
            return MysqlRequest(ts_ns=ts, size=4 + length, command=Command.SSL_REQUEST,
                                errors=("TLS: the rest of the connection is not parsed",),
                                _parsed=True)
        user: str | None = None
        database: str | None = None
        errors: tuple[str, ...] = ()
        try:
            user = clip(cur.cstring().decode("utf-8", "replace"))
            if caps & CLIENT_PLUGIN_AUTH_LENENC_DATA:
                cur.skip(lenenc(cur) or 0)
            elif caps & CLIENT_SECURE_CONNECTION:
                cur.skip(cur.u8())
            else:
                cur.cstring()
            if caps & CLIENT_CONNECT_WITH_DB and cur.remaining:
                database = clip(cur.cstring().decode("utf-8", "replace"))
        except (TruncatedError, MalformedError) as exc:
            errors = (f"login request: {exc}",)
        return self._push(MysqlRequest(ts_ns=ts, size=4 + length, errors=errors,
                                       command=Command.LOGIN, user=user, database=database,
                                       _parsed=True))

    def _push(self, request: MysqlRequest) -> MysqlRequest:
        if request.expects_response:
            self._expected.append(request.command)
            while len(self._expected) > MAX_PENDING_REQUESTS:
                self._expected.popleft()
        return request

    # -- responses -------------------------------------------------------------------------
    def _response(self, seq: int, payload: bytes, length: int, ts: int) -> Message | None:
        if not payload:
            raise MalformedError("empty response packet")
        answer = self._answer
        if answer is None:
            if seq == 0 and payload[0] == 0x0A:  # only the greeting has sequence id 0
                return self._greeting(payload, length, ts)
            command = self._expected[0] if self._expected else None
            answer = self._answer = _Answer(command, ts)
        answer.size += 4 + length
        done = self._packet(answer, payload, length)
        if done is False:
            return None
        self._answer = None
        if self._expected:
            self._expected.popleft()
        if done is None:  # the packet was not part of it: it starts the next response
            answer.size -= 4 + length
            finished = self._finish(answer)
            following = self._response(seq, payload, length, ts)  # never redispatches again
            if following is not None:
                self._ready.append(following)
            return finished
        return self._finish(answer)

    def _finish(self, answer: _Answer) -> MysqlResponse:
        f = answer.fields
        kind = str(f.pop("kind", "ok"))
        if answer.resultset:
            kind = "resultset" if kind != "error" else kind
            f.update(rows=answer.rows, columns=answer.columns)
            f.pop("affected_rows", None)  # the terminator's counters say nothing here
            f.pop("last_insert_id", None)
        elif answer.command in ROWS_ONLY_COMMANDS and kind != "error":
            f.update(rows=answer.rows)
        errors: tuple[str, ...] = ()
        if answer.command is Command.LOGIN and kind == "ok":
            compression = self._agreed_compression()
            if compression == "zstd" and not _HAVE_ZSTD:
                for side in self._sides.values():
                    side.skip = SKIP_TO_EOF
                errors = ("zstd-compressed protocol (no zstandard module here): the rest of "
                          "the connection is not parsed",)  # fmt: skip
            elif compression is not None:
                self._compress_next = compression
        return MysqlResponse(ts_ns=answer.ts, size=answer.size, kind=kind, errors=errors,
                             _parsed=True, **f)  # type: ignore[arg-type]

    def _greeting(self, payload: bytes, length: int, ts: int) -> Message:
        cur = Cursor(payload, 1)
        errors: tuple[str, ...] = ()
        version: str | None = None
        try:
            version = clip(cur.cstring().decode("utf-8", "replace"))
            cur.skip(4 + 8 + 1)  # connection id, auth data part 1, filler
            caps = cur.u16le()
            if cur.remaining:
                cur.skip(1 + 2)  # charset, status
                caps |= cur.u16le() << 16
            self.server_caps = caps
            if self.client_caps is not None:
                self.deprecate_eof = bool(caps & self.client_caps & CLIENT_DEPRECATE_EOF)
        except TruncatedError as exc:
            errors = (f"greeting: {exc}",)
        return MysqlResponse(ts_ns=ts, size=4 + length, errors=errors, kind="greeting",
                             server_version=version, _parsed=True)

    def _packet(self, answer: _Answer, payload: bytes, length: int) -> bool | None:
        """Take one packet of ``answer``.

        Returns:
            ``True``: the response is complete; ``False``: more packets are due;
            ``None``: complete, and this packet already belongs to the next one.
        """
        first, cur, f = payload[0], Cursor(payload, 1), answer.fields
        command, stage = answer.command, answer.stage
        if stage == "defs":
            if first == 0xFF:
                return self._error(cur, f)
            answer.left -= 1
            if answer.left:
                return False
            if self.deprecate_eof:
                return self._after_defs(answer)
            answer.stage = "eof?"
            return False
        if stage == "eof?":
            if first == 0xFE and length < (7 if self.deprecate_eof is None else 9):
                self.deprecate_eof = False
                return self._after_defs(answer)
            self.deprecate_eof = True  # no EOF after the definitions
            if self._after_defs(answer):
                return None
            return self._packet(answer, payload, length)
        if stage == "rows":
            return self._row(answer, payload, length)
        if first == 0xFF:
            return self._error(cur, f)
        if command in AUTH_COMMANDS and first != 0x00:
            return False  # auth switch request (0xFE), more auth data (0x01): absorbed
        if command is Command.COM_STATISTICS:
            f.update(kind="ok", info=clip(payload.decode("utf-8", "replace")))
            return True
        if command is None and first == 0x00 and length == PREPARE_OK_BYTES and payload[9] == 0:
            # Mid-stream, the request unseen: twelve bytes with a zero filler are
            # a PREPARE's answer (an OK is rarely that long), whose parameter and
            # column definitions follow; read as an OK, they would each pass
            # for a result set ("\x03def" counts three columns).
            command = answer.command = Command.COM_STMT_PREPARE
        if command is Command.COM_STMT_PREPARE and first == 0x00:
            f.update(kind="ok", statement_id=cur.u32le())
            answer.columns, params = cur.u16le(), cur.u16le()
            f.update(params=params, columns=answer.columns)
            answer.what = "params"
            return self._definitions(answer, params)
        if command in ROWS_ONLY_COMMANDS:
            answer.stage = "rows"
            return self._row(answer, payload, length)
        if first == 0x00:
            return self._ok(answer, cur, f)
        if first == 0xFE and length < 9:
            return self._eof(answer, cur, f)
        if command is not None and command not in RESULTSET_COMMANDS:
            f.update(kind="ok", info=clip(payload.decode("utf-8", "replace")))
            return True
        count = lenenc(Cursor(payload))
        if count is None or not 0 < count <= MAX_COLUMNS:
            raise MalformedError(f"result set with {count} columns")
        answer.resultset, answer.columns, answer.what = True, count, "resultset"
        return self._definitions(answer, count)

    def _definitions(self, answer: _Answer, count: int) -> bool:
        """Expect ``count`` definitions of ``answer.what`` (none: go past them)."""
        if count:
            answer.stage, answer.left = "defs", count
            return False
        return self._after_defs(answer)

    def _after_defs(self, answer: _Answer) -> bool:
        if answer.what == "params":
            answer.what = "columns"
            return self._definitions(answer, answer.columns)
        if answer.what == "columns":
            return True  # COM_STMT_PREPARE: no rows follow
        answer.stage = "rows"
        return False

    def _row(self, answer: _Answer, payload: bytes, length: int) -> bool:
        first, cur, f = payload[0], Cursor(payload, 1), answer.fields
        if first == 0xFF:
            return self._error(cur, f)
        if first == 0xFE and length < 9 and (length < 7 or self.deprecate_eof is False):
            return self._eof(answer, cur, f)
        if first == 0xFE and length < CONTINUED and self.deprecate_eof is not False:
            return self._ok(answer, cur, f)
        answer.rows += 1
        return False

    def _more(self, answer: _Answer, status: int) -> bool:
        """After a terminator: another result follows when the server says so."""
        if status & SERVER_MORE_RESULTS_EXISTS:
            answer.stage = "start"
            return False
        return True

    def _ok(self, answer: _Answer, cur: Cursor, f: dict[str, object]) -> bool:
        affected, insert_id = lenenc(cur), lenenc(cur)
        status = cur.u16le() if cur.remaining >= 2 else 0
        warnings = cur.u16le() if cur.remaining >= 2 else None
        f.update(kind="ok", affected_rows=affected, last_insert_id=insert_id, warnings=warnings)
        if answer.command in AUTH_COMMANDS:
            self._handshake = False
        return self._more(answer, status)

    def _eof(self, answer: _Answer, cur: Cursor, f: dict[str, object]) -> bool:
        warnings = cur.u16le() if cur.remaining >= 2 else None
        status = cur.u16le() if cur.remaining >= 2 else 0
        f.update(kind="eof", warnings=warnings)
        return self._more(answer, status)

    @staticmethod
    def _error(cur: Cursor, f: dict[str, object]) -> bool:
        code = cur.u16le()
        state = None
        if cur.remaining and cur.peek_u8() == 0x23:  # '#' + SQLSTATE (protocol 41)
            cur.skip(1)
            state = cur.string(5, "ascii")
        f.update(kind="error", error_code=code, sql_state=state,
                 error_message=clip(cur.rest().decode("utf-8", "replace")))
        return True

    # -- recovery --------------------------------------------------------------------------
    def _reset(self, side: Side) -> None:
        self._answer = None
        self._expected.clear()
        self._continued[side.direction] = False

    def _resync(self, side: Side) -> bool:
        buf = side.buf
        for pos in range(max(0, len(buf) - 4)):
            length, seq = int.from_bytes(buf[pos:pos + 3], "little"), buf[pos + 3]
            if not 0 < length <= MAX_PACKET_PREFIX_BYTES or len(buf) < pos + 5:
                continue
            first = buf[pos + 4]
            if side.direction is REQUEST:
                ends = _ends_at_a_packet(buf, pos + 4 + length)
                good = ((seq == 0 and not Command(first).name.startswith(("UNKNOWN", "COM_SLEEP"))
                         and (ends or (ends is None and first == Command.COM_QUERY
                                       and _query_so_far(buf, pos))))
                        or (seq == 1 and looks_like_login(bytes(buf[pos + 4:pos + 4 + length]))))
            elif seq == 0:
                good = first == 0x0A  # greeting
            else:
                # an OK or ERR: a command's (sequence 1) or a login's (2, or 3
                # after an auth switch); or a result set: its column count
                # (sequence 1), then a column definition (sequence 2) whose
                # catalog is always "def", a shape no bytes inside one can fake
                # by chance as easily as a single byte pattern
                after = pos + 4 + length
                good = (1 <= seq <= 3 and first in (0x00, 0xFF) and length < 1024
                        and _ends_at_a_packet(buf, after) is True) or (
                    seq == 1 and length <= 9 and buf[after + 3:after + 8] == b"\x02\x03def")
            if good:
                side.consume(pos)
                self._handshake = self._handshake and seq != 0
                return True
        return False


# Inference: whether a direction's first bytes are this protocol's.

def _signature(data: bytes, udp: bool) -> Match:
    if udp or len(data) < 5:
        return None
    length = int.from_bytes(data[:3], "little")
    seq, first = data[3], data[4]
    if length == 0 or length > len(data) - 4 + 65536:
        return None
    if seq == 0 and first == 10:  # server greeting, protocol version 10
        end = data.find(b"\x00", 5, 5 + 64)
        if end > 5 and PRINTABLE.fullmatch(data[5:end]) and length >= end - 4 + 4:
            return 0.9, RESPONSE
    whole = length == len(data) - 4
    # COM_QUERY / COM_STMT_PREPARE with printable SQL, COM_INIT_DB with a name
    if (seq == 0 and first in (0x02, 0x03, 0x16) and whole and length > 1
            and PRINTABLE.fullmatch(data[5:])):
        return 0.7, REQUEST
    # a MySQL 8 COM_QUERY whose query attributes come before the SQL
    if seq == 0 and first == 0x03 and whole and sql_after_attributes(data[4:]) is not None:
        return 0.7, REQUEST
    # Mid-connection, what else a client or a server sends first:
    if seq == 1 and whole and looks_like_login(data[4:]):
        return 0.8, REQUEST
    if seq >= 1 and whole and first == 0xFF and length >= 9 and data[7:8] == b"#":
        return 0.6, RESPONSE  # ERR: code, '#', a five-character SQL state
    if seq == 0 and whole and first == 0x17 and length >= 10 and data[10:14] == b"\1\0\0\0":
        return 0.5, REQUEST  # COM_STMT_EXECUTE: id, flags, iteration count 1
    if seq == 0 and whole and ((first in (0x01, 0x0E) and length == 1)
                               or (first in (0x19, 0x1A) and length == 5)):
        return 0.25, REQUEST  # QUIT, PING, STMT_CLOSE/RESET: the port decides
    if seq >= 1 and whole and first == 0x00 and 7 <= length <= 64:
        return 0.25, RESPONSE  # OK: the port decides
    return None


# What libtrace knows of the protocol (see _spec.py): its signature for
# inference, above, and the rest.
def redact(message: Message, redaction: Redaction) -> Message:
    """The literals of statements that set credentials (``IDENTIFIED BY``,
    ``PASSWORD(...)``, ``SET PASSWORD``), or every literal with ``sql_literals``.
    (The handshake's and COM_CHANGE_USER's auth data are never kept.)"""
    if isinstance(message, MysqlRequest) and message.query:
        query = redaction.sql(message.query)
        if query != message.query:
            return dataclasses.replace(message, query=query)
    return message


SPEC = ProtocolSpec(
    name="mysql",
    title="MySQL",
    parser=MysqlParser,
    signature=_signature,
    ports=frozenset({3306, 3307}),
    request_summary=("command", "query|database|user|statement_id"),
    response_summary=(
        "error_code|kind", "error_message", "affected_rows", "rows", "server_version"
    ),
    redact=redact,
)

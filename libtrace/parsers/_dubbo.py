"""Dubbo 2 (the ``dubbo://`` protocol) over TCP: requests, responses, heartbeats.

Theory of operation: every frame is a 16-byte header — magic ``0xdabb``, a
flag byte (request, two-way and event bits, serialization id in the low five
bits), a status byte (responses), a 64-bit request id and a 32-bit body
length — and a body.  The request bit, not the direction the bytes came
from, makes a frame a request or a response: a server sends heartbeat
requests to idle clients too.  Pairing is by (who sent the request, request
id), so the two peers' id spaces do not collide.

Only the start of a body is read: for a hessian2 request the Dubbo version,
service path, service version and method name (:mod:`.hessian2`); for a
response the hessian2 response type (value, null, exception) or, when the
status is not OK, the error text.  FastJson and Gson bodies (one JSON value a
line) and Kryo's (:mod:`._kryo`) give the same fields; the other
serializations are named in ``errors`` with their id in ``serialization``.
At most :data:`MAX_BODY_PREFIX_BYTES` of a body are buffered and the rest is
skipped, so arguments and results of any size cost nothing.  A body that cannot
be decoded leaves the fields ``None`` with the reason in ``errors``; the header
alone frames the stream.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Hashable
from dataclasses import dataclass
from typing import NamedTuple

from mypy_extensions import mypyc_attr

from ..frozen import hand_init
from . import _kryo as kryo
from ._base import Side, StreamParser, Transport
from ._cursor import Cursor
from ._enums import open_enum
from ._errors import LimitExceededError, MalformedError, TruncatedError
from ._events import REQUEST, RESPONSE, Direction, Message, Status, clip
from ._spec import Match, ProtocolSpec
from .hessian2 import read_int, read_string

#: Bytes of a body buffered to read its prefix (four strings of a request,
#: the response type or error text); the rest of the body is skipped.
MAX_BODY_PREFIX_BYTES = 64 * 1024
#: A body length beyond this is taken as corrupt (Dubbo's payload default is 8 MiB).
MAX_BODY_BYTES = 1 << 30
HEADER_BYTES = 16
MAGIC = b"\xda\xbb"
FLAG_REQUEST, FLAG_TWO_WAY, FLAG_EVENT = 0x80, 0x40, 0x20
SERIALIZATION_MASK = 0x1F
#: Serialization ids Dubbo defines (hessian2 is 2, the default), by their names in
#: Apache Dubbo's serialize Constants (10 was protostuff in older Dubbo).
HESSIAN2 = 2
SERIALIZATION_NAMES = {
    2: "hessian2", 3: "java", 4: "compactedjava", 6: "fastjson", 7: "nativejava", 8: "kryo",
    9: "fst", 10: "native-hessian", 11: "avro", 12: "protostuff", 16: "gson",
    21: "protobuf-json", 22: "protobuf", 23: "fastjson2", 25: "id 25",
}  # fmt: skip
SERIALIZATIONS = frozenset(SERIALIZATION_NAMES)
#: Serializations that write each object as one line of JSON (FastJson's and
#: Gson's ObjectOutput): a request's first four are read like hessian2's.
JSON_LINES = frozenset({6, 16})
#: Kryo: strings in Kryo's own form (:mod:`._kryo`), the response type one raw byte.
KRYO = 8
#: hessian2 response types (``DecodeableRpcResult``) -> what the record calls them.
RESULT_TYPES = {0: "exception", 1: "value", 2: "null", 3: "exception", 4: "value", 5: "null"}


@open_enum
class DubboStatus(enum.IntEnum):
    """Response status byte."""

    OK = 20
    CLIENT_TIMEOUT = 30
    SERVER_TIMEOUT = 31
    BAD_REQUEST = 40
    BAD_RESPONSE = 50
    SERVICE_NOT_FOUND = 60
    SERVICE_ERROR = 70
    SERVER_ERROR = 80
    CLIENT_ERROR = 90
    SERVER_THREADPOOL_EXHAUSTED_ERROR = 100


#: Statuses that blame the caller; every other non-OK status is the server's.
CLIENT_STATUSES = frozenset({30, 40, 60, 90})


class Header(NamedTuple):
    flags: int
    status: int
    request_id: int
    body_length: int

    @property
    def is_request(self) -> bool:
        return bool(self.flags & FLAG_REQUEST)


def read_header(data: bytes | bytearray, pos: int = 0) -> Header:
    """The frame header at ``data[pos]`` (16 bytes must be there).

    Raises:
        MalformedError: wrong magic, unknown serialization or status, a body too large.
    """
    cur = Cursor(data, pos, pos + HEADER_BYTES)
    if cur.bytes(2) != MAGIC:
        raise MalformedError("no Dubbo magic 0xdabb")
    header = Header(cur.u8(), cur.u8(), cur.u64(), cur.u32())
    if header.flags & SERIALIZATION_MASK not in SERIALIZATIONS:
        raise MalformedError(f"unknown Dubbo serialization {header.flags & SERIALIZATION_MASK}")
    if not header.is_request and DubboStatus(header.status).name.startswith("UNKNOWN"):
        raise MalformedError(f"unknown Dubbo status {header.status}")
    if header.body_length > MAX_BODY_BYTES:
        raise LimitExceededError(f"Dubbo body of {header.body_length} bytes")
    return header


@dataclass(frozen=True, slots=True, kw_only=True)
class DubboRequest(Message):
    """A Dubbo request (or event such as a heartbeat)."""

    @property
    def protocol(self) -> str:
        return "dubbo"


    request_id: int
    service: str | None = None
    method: str | None = None
    #: the service version (``version`` attachment of the URL), not Dubbo's
    version: str | None = None
    dubbo_version: str | None = None
    two_way: bool = True
    event: bool = False
    heartbeat: bool = False
    serialization: int = HESSIAN2
    #: "client" or "server": servers send heartbeats too
    sender: str = "client"

    def __init__(  # pragma: no cover
        self, *, ts_ns: int, size: int = 0, errors: tuple[str, ...] = (), _parsed: bool = False,
        request_id: int, service: str | None = None, method: str | None = None,
        version: str | None = None, dubbo_version: str | None = None, two_way: bool = True,
        event: bool = False, heartbeat: bool = False, serialization: int = 2,
        sender: str = "client",
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.size = size  # type: ignore[misc]
        self.errors = errors  # type: ignore[misc]
        self.request_id = request_id  # type: ignore[misc]
        self.service = service  # type: ignore[misc]
        self.method = method  # type: ignore[misc]
        self.version = version  # type: ignore[misc]
        self.dubbo_version = dubbo_version  # type: ignore[misc]
        self.two_way = two_way  # type: ignore[misc]
        self.event = event  # type: ignore[misc]
        self.heartbeat = heartbeat  # type: ignore[misc]
        self.serialization = serialization  # type: ignore[misc]
        self.sender = sender  # type: ignore[misc]
        self.__post_init__(_parsed)

    @property
    def key(self) -> Hashable:
        return (self.sender, self.request_id)

    @property
    def expects_response(self) -> bool:
        return self.two_way


@dataclass(frozen=True, slots=True, kw_only=True)
class DubboResponse(Message):
    """A Dubbo response."""

    @property
    def protocol(self) -> str:
        return "dubbo"

    @property
    def direction(self) -> Direction:
        return RESPONSE

    request_id: int
    status: DubboStatus
    #: "value", "null" or "exception" (hessian2 OK responses)
    result: str | None = None
    error_message: str | None = None
    event: bool = False
    sender: str = "server"

    def __init__(  # pragma: no cover
        self, *, ts_ns: int, size: int = 0, errors: tuple[str, ...] = (), _parsed: bool = False,
        request_id: int, status: DubboStatus, result: str | None = None,
        error_message: str | None = None, event: bool = False, sender: str = "server",
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.size = size  # type: ignore[misc]
        self.errors = errors  # type: ignore[misc]
        self.request_id = request_id  # type: ignore[misc]
        self.status = status  # type: ignore[misc]
        self.result = result  # type: ignore[misc]
        self.error_message = error_message  # type: ignore[misc]
        self.event = event  # type: ignore[misc]
        self.sender = sender  # type: ignore[misc]
        self.__post_init__(_parsed)

    @property
    def key(self) -> Hashable:
        return ("server" if self.sender == "client" else "client", self.request_id)

    @property
    def outcome(self) -> Status:
        if self.status is DubboStatus.OK:
            return Status.SERVER_ERROR if self.result == "exception" else Status.OK
        return Status.CLIENT_ERROR if self.status in CLIENT_STATUSES else Status.SERVER_ERROR


hand_init(DubboRequest, DubboResponse)


def decode_frame(header: Header, body: bytes, ts: int, size: int, sender: str,
                 complete: bool) -> Message:
    """The message of one frame from its header and (the prefix of) its body."""
    serialization = header.flags & SERIALIZATION_MASK
    event = bool(header.flags & FLAG_EVENT)
    cur = Cursor(body)
    errors: list[str] = []
    if header.is_request:
        fields: list[str | None] = [None, None, None, None]
        heartbeat = False
        try:
            if serialization in JSON_LINES and not event:
                fields = _json_strings(body, 4, complete)
            elif serialization == KRYO and not event:
                fields = [kryo.read_string(cur) for _ in range(4)]
            elif serialization != HESSIAN2:
                errors.append(_not_decoded(serialization))
            elif event:
                heartbeat = cur.peek_u8() == 0x4E  # a null body: heartbeat
            else:
                for i in range(4):
                    fields[i] = read_string(cur)
        except (TruncatedError, MalformedError, LimitExceededError) as exc:
            errors.append(_why(exc, complete))
        return DubboRequest(ts_ns=ts, size=size, errors=tuple(errors),
                            request_id=header.request_id, dubbo_version=fields[0],
                            service=fields[1], version=fields[2], method=fields[3],
                            two_way=bool(header.flags & FLAG_TWO_WAY), event=event,
                            heartbeat=heartbeat, serialization=serialization, sender=sender,
                            _parsed=True)
    result = message = None
    try:
        if serialization in JSON_LINES and not event:
            if header.status != DubboStatus.OK:
                (message,) = _json_strings(body, 1, complete)
            else:
                kind = _json_line(body, 0, complete)
                result = RESULT_TYPES.get(kind) if isinstance(kind, int) else None
                if result is None:
                    errors.append(f"unknown response type {kind!r}")
        elif serialization == KRYO and not event:
            if header.status != DubboStatus.OK:
                message = kryo.read_string(cur)
            else:  # writeByte: one raw byte
                kind = cur.u8()
                result = RESULT_TYPES.get(kind)
                if result is None:
                    errors.append(f"unknown response type {kind}")
        elif serialization != HESSIAN2:
            errors.append(_not_decoded(serialization))
        elif header.status != DubboStatus.OK:
            message = read_string(cur)
        elif not event:
            kind = read_int(cur)
            result = RESULT_TYPES.get(kind)
            if result is None:
                errors.append(f"unknown response type {kind}")
    except (TruncatedError, MalformedError, LimitExceededError) as exc:
        errors.append(_why(exc, complete))
    return DubboResponse(ts_ns=ts, size=size, errors=tuple(errors),
                         request_id=header.request_id, status=DubboStatus(header.status),
                         result=result, error_message=message, event=event, sender=sender,
                         _parsed=True)


def _not_decoded(serialization: int) -> str:
    return f"serialization {serialization} ({SERIALIZATION_NAMES[serialization]}) not decoded"


def _json_line(body: bytes, index: int, complete: bool) -> object:
    """The ``index``-th JSON line of a body."""
    lines = body.split(b"\n", index + 1)
    if len(lines) <= index or (len(lines) == index + 1 and not complete):
        raise TruncatedError(f"JSON line {index} not in the body read")
    try:
        return json.loads(lines[index])
    except (ValueError, UnicodeDecodeError):
        raise MalformedError(f"JSON line {index} is not JSON") from None


def _json_strings(body: bytes, count: int, complete: bool) -> list[str | None]:
    """The first ``count`` JSON lines, each a string (or null)."""
    values: list[str | None] = []
    for index in range(count):
        value = _json_line(body, index, complete)
        if value is not None and not isinstance(value, str):
            raise MalformedError(f"JSON line {index} is not a string")
        values.append(clip(value) if value is not None else None)
    return values


def _why(exc: Exception, complete: bool) -> str:
    where = "body" if complete else f"first {MAX_BODY_PREFIX_BYTES} bytes of the body"
    return clip(f"{where}: {type(exc).__name__}: {exc}", 200)


@mypyc_attr(allow_interpreted_subclasses=True)  # see libtrace/compiled.py
class DubboParser(StreamParser):
    """Dubbo 2 over TCP."""

    protocol = "dubbo"
    idle_when_empty = True  # _parse: nothing of no bytes

    def __init__(self, *, transport: Transport = "tcp", mid_stream: bool = False) -> None:
        super().__init__(transport=transport, mid_stream=mid_stream)

    def _parse(self, side: Side) -> Message | None:
        buf = side.buf
        if len(buf) < HEADER_BYTES:
            if buf and not MAGIC.startswith(bytes(buf[:2])):
                raise MalformedError("no Dubbo magic 0xdabb")
            return None
        header = read_header(bytes(buf[:HEADER_BYTES]))
        want = min(header.body_length, MAX_BODY_PREFIX_BYTES)
        if len(buf) < HEADER_BYTES + want:
            return None
        ts = side.ts_at(0)
        body = bytes(buf[HEADER_BYTES:HEADER_BYTES + want])
        sender = "client" if side.direction is REQUEST else "server"
        message = decode_frame(header, body, ts, HEADER_BYTES + header.body_length, sender,
                               complete=want == header.body_length)
        side.consume(HEADER_BYTES + want)
        side.skip = header.body_length - want
        return message

    def _resync(self, side: Side) -> bool:
        buf, pos = side.buf, 0
        while (pos := buf.find(MAGIC, pos)) >= 0:
            if len(buf) - pos < HEADER_BYTES:
                side.consume(pos)
                return False
            try:
                read_header(bytes(buf[pos:pos + HEADER_BYTES]))
            except (MalformedError, LimitExceededError):
                pos += 1
                continue
            side.consume(pos)
            return True
        if buf and buf[-1] == MAGIC[0]:
            side.consume(len(buf) - 1)
        return False


# Inference: whether a direction's first bytes are this protocol's.

#: A Dubbo body larger than this is implausible as a first message.
DUBBO_MAX_BODY_BYTES = 100 * 1024 * 1024


def _signature(data: bytes, udp: bool) -> Match:
    if udp or len(data) < 16 or data[:2] != b"\xda\xbb":
        return None
    flags = data[2]
    body = int.from_bytes(data[12:16], "big")
    if body > DUBBO_MAX_BODY_BYTES:
        return None
    return 0.95, REQUEST if flags & 0x80 else RESPONSE


# What libtrace knows of the protocol (see _spec.py): its signature for
# inference, above, and the rest.
SPEC = ProtocolSpec(
    name="dubbo",
    title="Dubbo",
    parser=DubboParser,
    signature=_signature,
    ports=frozenset({20880}),
    # a body not decoded (fst, protobuf, ...) says why instead of an empty row
    request_summary=("service|errors", "method"),
    response_summary=("status", "error_message|errors"),
)

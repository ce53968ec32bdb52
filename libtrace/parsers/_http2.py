"""HTTP/2 (RFC 9113) over cleartext TCP, including gRPC: frames by hyperframe, HPACK by hpack.

Theory of operation: each direction is a sequence of frames (after the
client's connection preface, when it was captured).  Header blocks
(HEADERS/PUSH_PROMISE plus CONTINUATION) are decoded by the direction's
:class:`~libtrace.parsers._hpack.TolerantDecoder` — every block, even ones we
do not report, because each may change the dynamic table.  DATA payloads are
skipped, only counted.  A request is emitted when its first header block is
complete; a response when the server ends the stream (END_STREAM on HEADERS or
DATA) or either side resets it, so gRPC trailers (``grpc-status``) are in it.
A capture that starts mid-connection resynchronises on a plausible frame
header and decodes headers partially (errors attached) until the dynamic
table has refilled.  Both directions share one stream table, bounded by
:data:`MAX_H2_STREAMS`.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from hyperframe.exceptions import HyperframeError
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    PushPromiseFrame,
    RstStreamFrame,
)
from mypy_extensions import mypyc_attr

from ..frozen import hand_init
from ._base import Side, StreamParser, Transport
from ._errors import LimitExceededError, MalformedError
from ._events import REQUEST, RESPONSE, Direction, Message, Status, clip
from ._hpack import TolerantDecoder
from ._http1 import http_status, trace_context, with_trace_context
from ._limits import MAX_H2_FRAME_BYTES, MAX_H2_STREAMS, MAX_HEADERS
from ._spec import Match, ProtocolSpec
from .redaction import Redaction

#: The client connection preface (RFC 9113 section 3.4).
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER_BYTES = 9
#: Frame types (RFC 9113 section 6) and the flags each may carry.
FRAME_FLAGS: dict[int, int] = {0: 0x09, 1: 0x2D, 2: 0x00, 3: 0x00, 4: 0x01, 5: 0x0C,
                               6: 0x01, 7: 0x00, 8: 0x00, 9: 0x04}
#: Frame types that belong to a stream (stream id > 0) and to the connection (id 0).
STREAM_FRAMES = frozenset({0, 1, 2, 3, 5, 9})
CONNECTION_FRAMES = frozenset({4, 6, 7})
#: The largest frame a peer may announce (2^24 - 1); the default is 16 KiB.
MAX_FRAME_SIZE_ALLOWED = (1 << 24) - 1
#: gRPC status codes that blame the caller; other non-zero codes are server errors.
GRPC_CLIENT_ERRORS = frozenset({1, 3, 5, 6, 7, 9, 11, 16})
END_STREAM, END_HEADERS = 0x01, 0x04
Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Http2Request(Message):
    """The request headers of one HTTP/2 stream."""

    @property
    def protocol(self) -> str:
        return "http2"

    @property
    def _not_fields(self) -> frozenset[str]:
        return frozenset({"ts_ns", "size", "errors", "headers"})

    stream_id: int
    method: str | None
    path: str | None
    authority: str | None = None
    scheme: str | None = None
    content_type: str | None = None
    headers: Headers = ()

    def __init__(  # pragma: no cover
        self, *, ts_ns: int, size: int = 0, errors: tuple[str, ...] = (), _parsed: bool = False,
        stream_id: int, method: str | None, path: str | None, authority: str | None = None,
        scheme: str | None = None, content_type: str | None = None, headers: Headers = (),
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.size = size  # type: ignore[misc]
        self.errors = errors  # type: ignore[misc]
        self.stream_id = stream_id  # type: ignore[misc]
        self.method = method  # type: ignore[misc]
        self.path = path  # type: ignore[misc]
        self.authority = authority  # type: ignore[misc]
        self.scheme = scheme  # type: ignore[misc]
        self.content_type = content_type  # type: ignore[misc]
        self.headers = headers  # type: ignore[misc]
        self.__post_init__(_parsed)

    @property
    def trace_context(self) -> dict[str, str]:
        """``traceparent``, ``tracestate``, B3 and ``x-request-id`` headers, if sent."""
        return trace_context(self.headers)

    def fields(self) -> dict[str, Any]:
        return with_trace_context(Message.fields(self), self.headers)

    @property
    def key(self) -> int:
        return self.stream_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Http2Response(Message):
    """The response of one HTTP/2 stream, with its trailers."""

    @property
    def protocol(self) -> str:
        return "http2"

    @property
    def direction(self) -> Direction:
        return RESPONSE

    @property
    def _not_fields(self) -> frozenset[str]:
        return frozenset({"ts_ns", "size", "errors", "headers"})

    stream_id: int
    status: int | None
    grpc_status: int | None = None
    grpc_message: str | None = None
    content_type: str | None = None
    body_size: int = 0
    reset_code: int | None = None
    headers: Headers = ()

    def __init__(  # pragma: no cover
        self, *, ts_ns: int, size: int = 0, errors: tuple[str, ...] = (), _parsed: bool = False,
        stream_id: int, status: int | None, grpc_status: int | None = None,
        grpc_message: str | None = None, content_type: str | None = None, body_size: int = 0,
        reset_code: int | None = None, headers: Headers = (),
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.size = size  # type: ignore[misc]
        self.errors = errors  # type: ignore[misc]
        self.stream_id = stream_id  # type: ignore[misc]
        self.status = status  # type: ignore[misc]
        self.grpc_status = grpc_status  # type: ignore[misc]
        self.grpc_message = grpc_message  # type: ignore[misc]
        self.content_type = content_type  # type: ignore[misc]
        self.body_size = body_size  # type: ignore[misc]
        self.reset_code = reset_code  # type: ignore[misc]
        self.headers = headers  # type: ignore[misc]
        self.__post_init__(_parsed)

    @property
    def key(self) -> int:
        return self.stream_id

    @property
    def outcome(self) -> Status:
        if self.grpc_status:
            return (Status.CLIENT_ERROR if self.grpc_status in GRPC_CLIENT_ERRORS
                    else Status.SERVER_ERROR)
        if self.status is not None:
            return http_status(self.status)
        return Status.SERVER_ERROR if self.reset_code else Status.UNKNOWN


hand_init(Http2Request, Http2Response)


@dataclass(slots=True)
class _Stream:
    request_done: bool = False
    response_ts: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    body_size: int = 0
    size: int = 0


@dataclass(slots=True)
class _SideState:
    decoder: TolerantDecoder = field(default_factory=TolerantDecoder)
    preface_done: bool = False
    #: (stream id, frame kind, block so far, END_STREAM, ts) while CONTINUATION is due
    block: tuple[int, str, bytearray, bool, int] | None = None
    ready: deque[Message] = field(default_factory=deque)
    #: stream offset before which the resync found no frame start (see _resync)
    hunted: int = 0


def _get(headers: list[tuple[str, str]] | Headers, name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _int_or_none(text: str | None) -> int | None:
    # isascii: str.isdigit() also takes "²", which int() refuses with a ValueError
    # (the same as HTTP/1's Content-Length, which tox -e fuzz-deep found).
    if text is not None and text.isascii() and text.isdigit() and len(text) < 10:
        return int(text)
    return None


def plausible_frame_header(head: bytes | bytearray, max_length: int = 1 << 14) -> bool:
    """Whether 9 bytes can start an HTTP/2 frame (used to resync and to infer)."""
    if len(head) < FRAME_HEADER_BYTES:
        return False
    length = int.from_bytes(head[:3], "big")
    ftype, flags = head[3], head[4]
    stream_id = int.from_bytes(head[5:9], "big")
    if ftype not in FRAME_FLAGS or flags & ~FRAME_FLAGS[ftype] or length > max_length:
        return False
    if stream_id & 0x80000000:
        return False
    if ftype in STREAM_FRAMES:
        return stream_id != 0
    if ftype in CONNECTION_FRAMES:
        return stream_id == 0 and (ftype != 4 or length % 6 == 0) and (ftype != 6 or length == 8)
    return True  # WINDOW_UPDATE: either


@mypyc_attr(allow_interpreted_subclasses=True)  # see libtrace/compiled.py
class Http2Parser(StreamParser):
    """HTTP/2 with prior knowledge (h2c) or mid-connection; see the module docstring."""

    protocol = "http2"

    def __init__(self, *, transport: Transport = "tcp", mid_stream: bool = False) -> None:
        super().__init__(transport=transport, mid_stream=mid_stream)
        for side in self._sides.values():
            side.state = _SideState(preface_done=mid_stream)
        self._streams: OrderedDict[int, _Stream] = OrderedDict()

    # -- hooks -------------------------------------------------------------------------
    def _reset(self, side: Side) -> None:
        state = self._state(side)
        state.decoder.reset()
        state.block = None
        state.preface_done = True

    def _resync(self, side: Side) -> bool:
        # A start is rejected by the nine bytes there and the nine its length
        # points to, all already buffered: more bytes never change the verdict,
        # so a hunt goes on where the last one stopped instead of from the start
        # of the kept tail each time (fed in 64-byte pieces, rescanning made a
        # 64 KiB hunt cost 4 s of CPU; seen while measuring tox -e fuzz-deep).
        buf, state = side.buf, self._state(side)
        end = max(0, len(buf) - FRAME_HEADER_BYTES + 1)
        for pos in range(max(0, state.hunted - side.consumed), end):
            head = buf[pos:pos + FRAME_HEADER_BYTES]
            if not plausible_frame_header(head) or head[3] == 9:  # never start at CONTINUATION
                continue
            nxt = pos + FRAME_HEADER_BYTES + int.from_bytes(head[:3], "big")
            if nxt + FRAME_HEADER_BYTES <= len(buf) and not plausible_frame_header(
                    buf[nxt:nxt + FRAME_HEADER_BYTES]):
                continue
            side.consume(pos)
            return True
        state.hunted = max(state.hunted, side.consumed + end)
        return False

    @staticmethod
    def _state(side: Side) -> _SideState:
        assert isinstance(side.state, _SideState)
        return side.state

    def _parse(self, side: Side) -> Message | None:
        state = self._state(side)
        if state.ready:
            return state.ready.popleft()
        if side.eof and not side.buf:
            self._flush_at_eof(side, state)
            return state.ready.popleft() if state.ready else None
        buf = side.buf
        if not state.preface_done and side.direction is REQUEST:
            if buf[:len(PREFACE)] == PREFACE:
                side.consume(len(PREFACE))
                state.preface_done = True
                return None
            if PREFACE.startswith(bytes(buf)):
                return None
            state.preface_done = True  # no preface: the capture started after it
        if len(buf) < FRAME_HEADER_BYTES:
            return None
        try:
            frame, length = Frame.parse_frame_header(memoryview(bytes(buf[:FRAME_HEADER_BYTES])))
        except (HyperframeError, ValueError) as exc:
            raise MalformedError(f"invalid frame header: {exc}") from None
        if isinstance(frame, DataFrame):
            side.consume(FRAME_HEADER_BYTES)
            side.skip = length
            self._data(side, frame.stream_id, length, "END_STREAM" in frame.flags)
            return state.ready.popleft() if state.ready else None
        if length > MAX_H2_FRAME_BYTES:
            raise LimitExceededError(f"{type(frame).__name__} of {length} bytes")
        if len(buf) < FRAME_HEADER_BYTES + length:
            return None
        ts = side.ts_at(0)
        body = bytes(buf[FRAME_HEADER_BYTES:FRAME_HEADER_BYTES + length])
        try:
            frame.parse_body(memoryview(body))
        except (HyperframeError, ValueError, IndexError) as exc:
            raise MalformedError(f"invalid {type(frame).__name__}: {exc}") from None
        side.consume(FRAME_HEADER_BYTES + length)
        self._frame(side, state, frame, ts, FRAME_HEADER_BYTES + length)
        return state.ready.popleft() if state.ready else None

    # -- frames ------------------------------------------------------------------------
    def _frame(self, side: Side, state: _SideState, frame: Frame, ts: int, size: int) -> None:
        if state.block is not None and not isinstance(frame, ContinuationFrame):
            raise MalformedError("header block interrupted before END_HEADERS")
        if isinstance(frame, HeadersFrame | PushPromiseFrame):
            kind = "push" if isinstance(frame, PushPromiseFrame) else "headers"
            state.block = (frame.stream_id, kind, bytearray(frame.data),
                           "END_STREAM" in frame.flags, ts)
        elif isinstance(frame, ContinuationFrame):
            if state.block is None or state.block[0] != frame.stream_id:
                raise MalformedError("CONTINUATION without a header block")
            state.block[2].extend(frame.data)
            if len(state.block[2]) > MAX_H2_FRAME_BYTES:
                raise LimitExceededError("header block too large")
        elif isinstance(frame, RstStreamFrame):
            self._reset_stream(side, frame.stream_id, frame.error_code)
            return
        else:
            return  # SETTINGS, PING, GOAWAY, WINDOW_UPDATE, PRIORITY, extensions
        if "END_HEADERS" in frame.flags:
            stream_id, kind, block, end_stream, block_ts = state.block
            state.block = None
            headers, errors = state.decoder.decode(bytes(block))
            if len(headers) > MAX_HEADERS:
                raise LimitExceededError(f"more than {MAX_HEADERS} header fields")
            if kind == "headers":
                self._headers(side, stream_id, headers, errors, end_stream, block_ts, size)

    def _stream(self, stream_id: int) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            if len(self._streams) >= MAX_H2_STREAMS:
                self._streams.popitem(last=False)
            stream = self._streams[stream_id] = _Stream()
        return stream

    def _headers(self, side: Side, stream_id: int, headers: list[tuple[str, str]],
                 errors: tuple[str, ...], end_stream: bool, ts: int, size: int) -> None:
        stream = self._stream(stream_id)
        if side.direction is REQUEST:
            if stream.request_done:
                return  # request trailers
            if stream_id % 2 == 0:
                raise MalformedError(f"client opened even stream {stream_id}")
            stream.request_done = True
            self._state(side).ready.append(Http2Request(
                ts_ns=ts, size=size, errors=errors, stream_id=stream_id,
                method=_get(headers, ":method"), path=_clip(_get(headers, ":path")),
                authority=_get(headers, ":authority"), scheme=_get(headers, ":scheme"),
                content_type=_get(headers, "content-type"), headers=tuple(headers),
                _parsed=True))
            return
        stream.size += size  # the response's own header blocks (interim ones too)
        status = _int_or_none(_get(headers, ":status"))
        if status is not None and 100 <= status < 200 and not end_stream:
            return  # interim response
        if stream.response_ts is None:
            stream.response_ts = ts
        stream.headers.extend(headers)
        stream.errors.extend(errors)
        if end_stream:
            self._finish(side, stream_id)

    def _data(self, side: Side, stream_id: int, length: int, end_stream: bool) -> None:
        if stream_id == 0:
            raise MalformedError("DATA on stream 0")
        if side.direction is RESPONSE:
            stream = self._stream(stream_id)
            stream.body_size += length
            stream.size += FRAME_HEADER_BYTES + length
            if stream.response_ts is None:
                stream.response_ts = side.ts_at(0)
            if end_stream:
                self._finish(side, stream_id)

    def _reset_stream(self, side: Side, stream_id: int, code: int) -> None:
        if stream_id in self._streams:
            self._finish(side, stream_id, reset_code=code)

    def _finish(self, side: Side, stream_id: int, reset_code: int | None = None,
                error: str | None = None) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        if stream.response_ts is None and reset_code is None:
            return
        headers = stream.headers
        errors = [*stream.errors, *([error] if error else [])]
        self._state(side).ready.append(Http2Response(
            ts_ns=stream.response_ts if stream.response_ts is not None else side.last_ts,
            size=stream.size, errors=tuple(errors), stream_id=stream_id,
            status=_int_or_none(_get(headers, ":status")),
            grpc_status=_int_or_none(_get(headers, "grpc-status")),
            grpc_message=_clip(_get(headers, "grpc-message")),
            content_type=_get(headers, "content-type"), body_size=stream.body_size,
            reset_code=reset_code, headers=tuple(headers), _parsed=True))

    def _flush_at_eof(self, side: Side, state: _SideState) -> None:
        if side.direction is not RESPONSE:
            return
        for stream_id in [s for s, st in self._streams.items() if st.response_ts is not None]:
            self._finish(side, stream_id, error="connection ended before END_STREAM")


def _clip(text: str | None) -> str | None:
    return clip(text) if text is not None else None


# Inference: whether a direction's first bytes are this protocol's.

#: Stream ids beyond this do not pass for HTTP/2 mid-connection: 8 million
#: requests on one connection before the capture began, or, far likelier, four
#: bytes of another protocol (a cut Kafka answer's int32 fields read as frames).
MAX_INFERRED_STREAM_ID = 1 << 24


def _signature(data: bytes, udp: bool) -> Match:
    if udp:
        return None
    if data.startswith(PREFACE) or (len(data) >= 8 and PREFACE.startswith(data[:24])):
        return 0.99, REQUEST
    # Mid-connection (or a server's first SETTINGS): whatever frames come first,
    # each header plausible, back to back.
    frames: list[tuple[int, int, int, bytes]] = []  # type, flags, stream id, payload
    pos = 0
    while (pos + 9 <= len(data) and plausible_frame_header(data[pos:pos + 9])
           and int.from_bytes(data[pos + 5:pos + 9], "big") < MAX_INFERRED_STREAM_ID):
        length = int.from_bytes(data[pos:pos + 3], "big")
        ftype, flags = data[pos + 3], data[pos + 4]
        if ftype in (0, 1) and not length and not (ftype == 0 and flags & 1):
            break  # an empty HEADERS, or an empty DATA that ends nothing: zeros, not a frame
        frames.append((data[pos + 3], data[pos + 4], int.from_bytes(data[pos + 5:pos + 9], "big"),
                       data[pos + 9:pos + 9 + length]))  # fmt: skip
        pos += 9 + length
    if not frames or (pos < len(data) and len(data) - pos >= 9):
        return None  # not frames back to back (the last may be cut short)
    if pos > len(data) and len(frames) == 1:
        # One frame, cut short: nine bytes of header alone are too little to tell
        # from noise (the middle of another protocol's message can pass).
        return 0.25, None
    directions = {d for frame in frames if (d := _http2_sender(*frame)) is not None}
    direction = directions.pop() if len(directions) == 1 else None
    ftype, flags, _, _ = frames[0]
    whole = len(frames) - (pos > len(data))  # the last may be cut short
    told = any(frame[0] == 1 and _http2_sender(*frame) for frame in frames)
    if any(frame[0] in (0, 1) for frame in frames) and (whole >= 2 or told):
        # DATA or HEADERS, and either two whole frames back to back or a header
        # block that opens with a pseudo-header: one small frame alone is a
        # dozen bytes that the inside of another protocol's message can mimic.
        return min(0.85, 0.55 + 0.05 * len(frames)), direction
    if ftype == 4 and not flags & 1:
        # A first SETTINGS that is no ACK: a server's opening (a client's comes
        # after the preface); a SETTINGS ACK can come from either side.
        return 0.6, direction or RESPONSE
    # PING, SETTINGS ACK, WINDOW_UPDATE...: 9-17 bytes; only a port makes them enough.
    return 0.25, direction


#: HPACK static table indexes (RFC 7541, appendix A) of request pseudo-headers
#: (:authority, :method, :path, :scheme) and of :status.
_HPACK_REQUEST = range(1, 8)
_HPACK_STATUS = range(8, 15)


def _http2_sender(ftype: int, flags: int, stream_id: int, payload: bytes) -> Direction | None:
    """Which side sent a frame, where the frame can tell: a HEADERS block begins
    with a pseudo-header (a request's :method/:path/..., a response's :status),
    which HPACK encodes as an index into its static table, known without the
    connection's dynamic table; PUSH_PROMISE and even streams are the server's."""
    if ftype == 5 or (ftype in (0, 1) and stream_id and stream_id % 2 == 0):
        return RESPONSE
    if ftype != 1:
        return None
    pos = (1 if flags & 0x8 else 0) + (5 if flags & 0x20 else 0)  # PADDED, PRIORITY
    if pos >= len(payload):
        return None
    first = payload[pos]
    if first & 0x80:  # indexed header field
        index = first & 0x7F
    elif first & 0x40:  # literal with incremental indexing, indexed name
        index = first & 0x3F
    elif first & 0x20:  # dynamic table size update: look no further
        return None
    else:  # literal without indexing / never indexed, indexed name
        index = first & 0x0F
    if index in _HPACK_REQUEST:
        return REQUEST
    if index in _HPACK_STATUS:
        return RESPONSE
    return None


# What libtrace knows of the protocol (see _spec.py): its signature for
# inference, above, and the rest.
def redact(message: Message, redaction: Redaction) -> Message:
    """Credential headers and credential-like query parameters of ``:path``, replaced."""
    if isinstance(message, Http2Request):
        path, headers = redaction.path(message.path), redaction.header_pairs(message.headers)
        if path is not message.path or headers is not message.headers:
            return dataclasses.replace(message, path=path, headers=headers)
    elif isinstance(message, Http2Response):
        headers = redaction.header_pairs(message.headers)
        if headers is not message.headers:
            return dataclasses.replace(message, headers=headers)
    return message


SPEC = ProtocolSpec(
    name="http2",
    title="HTTP/2",
    parser=Http2Parser,
    signature=_signature,
    ports=frozenset({80, 8080, 50051, 9090}),
    request_summary=("method", "path"),
    response_summary=("status", "grpc_status", "grpc_message", "reset_code"),
    redact=redact,
)

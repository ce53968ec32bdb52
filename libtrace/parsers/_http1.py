"""HTTP/1.0 and HTTP/1.1 (RFC 9112): pipelining, chunked and length bodies, resync.

Theory of operation: each direction runs the body-framing state machine
:data:`TRANSITIONS` — ``(phase, input) -> phase`` — with one method,
:func:`_advance`, that applies it.  A head (request or status line plus
headers) decides the body framing; bodies are skipped with ``side.skip``, never
buffered, and a message is emitted when its body ends.  Responses that cannot
have a body (to HEAD, 1xx, 204, 304) are framed from the methods of the
requests parsed so far, so request bytes should be fed before their response's
(they are, in capture order).  ``101 Switching Protocols`` and a successful
``CONNECT`` turn both directions opaque.  Interim ``1xx`` responses are consumed
without an event.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from mypy_extensions import mypyc_attr

from ..frozen import hand_init
from ._base import SKIP_TO_EOF, Side, StreamParser, Transport
from ._errors import LimitExceededError, MalformedError
from ._events import (
    NEED_DATA,
    REQUEST,
    RESPONSE,
    Direction,
    Event,
    Message,
    Status,
    _NeedData,
    clip,
)
from ._limits import MAX_HEADERS, MAX_HTTP_BODY_BYTES, MAX_HTTP_HEAD_BYTES, MAX_PENDING_REQUESTS
from ._spec import Match, ProtocolSpec
from .redaction import Redaction

METHODS = (
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH", "PURGE",
)
_METHOD_RE = "|".join(METHODS)
#: a request line at the start of a line; the anchor for resynchronising
REQUEST_START = re.compile(rb"(?:^|\n)((?:" + _METHOD_RE.encode() + rb") \S+ HTTP/1\.[01]\r?\n)")
#: a status line at the start of a line
RESPONSE_START = re.compile(rb"(?:^|\n)(HTTP/1\.[01] [1-5]\d\d[ \r\n])")
_REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}) (\S{1,65536}) HTTP/(1\.[01])")
_STATUS_LINE = re.compile(rb"HTTP/(1\.[01]) ([1-5]\d\d)(?: (.*))?")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PREFIX_REQUEST = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}( |$)")
_PREFIX_RESPONSE = re.compile(rb"(H(T(T(P(/(1(\.([01]( |$)?)?)?)?)?)?)?)?$|HTTP/1\.[01] )")
_HEAD_END = re.compile(rb"\r?\n\r?\n")


class Phase(enum.Enum):
    """Where a direction is in the body-framing state machine."""

    HEAD = "head"                #: expecting a request or status line
    BODY = "body"                #: skipping a Content-Length body
    CHUNK_SIZE = "chunk-size"    #: expecting a chunk-size line
    CHUNK_DATA = "chunk-data"    #: skipping chunk data, then its CRLF
    TRAILERS = "trailers"        #: expecting trailer lines after the last chunk
    UNTIL_CLOSE = "until-close"  #: the body runs to the end of the connection
    OPAQUE = "opaque"            #: no longer HTTP/1 (upgrade, tunnel)


class Input(enum.Enum):
    """What the parser saw, as input of :data:`TRANSITIONS`."""

    NO_BODY = "no-body"
    LENGTH = "length"
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until-close"
    UPGRADE = "upgrade"
    CHUNK = "chunk"
    LAST_CHUNK = "last-chunk"
    CHUNK_END = "chunk-end"
    BODY_END = "body-end"


#: The body-framing state machine, shared by both directions.
TRANSITIONS: dict[tuple[Phase, Input], Phase] = {
    (Phase.HEAD, Input.NO_BODY): Phase.HEAD,
    (Phase.HEAD, Input.LENGTH): Phase.BODY,
    (Phase.HEAD, Input.CHUNKED): Phase.CHUNK_SIZE,
    (Phase.HEAD, Input.UNTIL_CLOSE): Phase.UNTIL_CLOSE,
    (Phase.HEAD, Input.UPGRADE): Phase.OPAQUE,
    (Phase.BODY, Input.BODY_END): Phase.HEAD,
    (Phase.CHUNK_SIZE, Input.CHUNK): Phase.CHUNK_DATA,
    (Phase.CHUNK_SIZE, Input.LAST_CHUNK): Phase.TRAILERS,
    (Phase.CHUNK_DATA, Input.CHUNK_END): Phase.CHUNK_SIZE,
    (Phase.TRAILERS, Input.BODY_END): Phase.HEAD,
    (Phase.UNTIL_CLOSE, Input.BODY_END): Phase.HEAD,
}


Headers = tuple[tuple[str, str], ...]

#: Headers that carry a distributed trace's context (W3C Trace Context, Zipkin's
#: B3 in its single and multi-header forms, the common request id): in a record
#: they let the records of two services be joined.
TRACE_CONTEXT_HEADERS = ("traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid",
                         "x-b3-parentspanid", "x-b3-sampled", "x-request-id")  # fmt: skip


def trace_context(headers: Headers) -> dict[str, str]:
    """The trace context headers among ``headers`` (lower-case names), first value of each."""
    out: dict[str, str] = {}
    for name, value in headers:
        lower = name.lower()
        if lower in TRACE_CONTEXT_HEADERS and lower not in out:
            out[lower] = value
    return out



def with_trace_context(out: dict[str, Any], headers: Headers) -> dict[str, Any]:
    """A request's record fields plus its ``trace_context`` object, present only
    when the request sent some (HTTP/1 and HTTP/2 requests alike)."""
    context = trace_context(headers)
    if context:
        out["trace_context"] = context
    return out

@dataclass(frozen=True, slots=True, kw_only=True)
class Http1Request(Message):
    """An HTTP/1 request."""

    @property
    def protocol(self) -> str:
        return "http1"

    @property
    def _not_fields(self) -> frozenset[str]:
        return frozenset({"ts_ns", "size", "errors", "headers"})

    method: str
    path: str
    version: str
    host: str | None = None
    body_size: int = 0
    headers: Headers = ()

    def __init__(  # pragma: no cover
        self, *, ts_ns: int, size: int = 0, errors: tuple[str, ...] = (), _parsed: bool = False,
        method: str, path: str, version: str, host: str | None = None, body_size: int = 0,
        headers: Headers = (),
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.size = size  # type: ignore[misc]
        self.errors = errors  # type: ignore[misc]
        self.method = method  # type: ignore[misc]
        self.path = path  # type: ignore[misc]
        self.version = version  # type: ignore[misc]
        self.host = host  # type: ignore[misc]
        self.body_size = body_size  # type: ignore[misc]
        self.headers = headers  # type: ignore[misc]
        self.__post_init__(_parsed)

    @property
    def trace_context(self) -> dict[str, str]:
        """``traceparent``, ``tracestate``, B3 and ``x-request-id`` headers, if sent."""
        return trace_context(self.headers)

    def fields(self) -> dict[str, Any]:
        return with_trace_context(Message.fields(self), self.headers)

    def _validate(self) -> None:
        if not _TOKEN.fullmatch(self.method.encode("latin-1", "replace")):
            raise MalformedError(f"invalid method {self.method!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Http1Response(Message):
    """An HTTP/1 response."""

    @property
    def protocol(self) -> str:
        return "http1"

    @property
    def direction(self) -> Direction:
        return RESPONSE

    @property
    def _not_fields(self) -> frozenset[str]:
        return frozenset({"ts_ns", "size", "errors", "headers"})

    status: int
    version: str
    reason: str = ""
    content_type: str | None = None
    body_size: int = 0
    headers: Headers = ()

    def __init__(  # pragma: no cover
        self, *, ts_ns: int, size: int = 0, errors: tuple[str, ...] = (), _parsed: bool = False,
        status: int, version: str, reason: str = "", content_type: str | None = None,
        body_size: int = 0, headers: Headers = (),
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.size = size  # type: ignore[misc]
        self.errors = errors  # type: ignore[misc]
        self.status = status  # type: ignore[misc]
        self.version = version  # type: ignore[misc]
        self.reason = reason  # type: ignore[misc]
        self.content_type = content_type  # type: ignore[misc]
        self.body_size = body_size  # type: ignore[misc]
        self.headers = headers  # type: ignore[misc]
        self.__post_init__(_parsed)

    def _validate(self) -> None:
        if not 100 <= self.status <= 599:
            raise MalformedError(f"invalid status {self.status}")

    @property
    def outcome(self) -> Status:
        return http_status(self.status)


hand_init(Http1Request, Http1Response)


def http_status(code: int) -> Status:
    """Classify an HTTP status code (shared with HTTP/2)."""
    if code >= 500:
        return Status.SERVER_ERROR
    if code >= 400:
        return Status.CLIENT_ERROR
    return Status.OK


@dataclass(slots=True)
class _State:
    phase: Phase = Phase.HEAD
    #: the message whose body is being framed
    head: dict[str, object] = field(default_factory=dict)
    body_size: int = 0
    head_size: int = 0
    ts_ns: int = 0


def _advance(state: _State, event: Input) -> None:
    """Apply :data:`TRANSITIONS`; a missing entry is a protocol error."""
    try:
        state.phase = TRANSITIONS[(state.phase, event)]
    except KeyError:
        raise MalformedError(f"{event.value} is not valid in phase {state.phase.value}") from None


def _header(headers: Headers, name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _parse_headers(lines: list[bytes]) -> Headers:
    if len(lines) > MAX_HEADERS:
        raise LimitExceededError(f"more than {MAX_HEADERS} header fields")
    out: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and out:  # obsolete line folding
            name, value = out[-1]
            out[-1] = (name, value + " " + line.strip().decode("latin-1"))
            continue
        raw_name, sep, raw_value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(raw_name):
            raise MalformedError(f"invalid header line {clip(repr(line), 80)}")
        out.append((raw_name.decode("ascii").lower(), raw_value.strip().decode("latin-1")))
    return tuple(out)


def _content_length(headers: Headers) -> int | None:
    values = {v.strip() for k, v in headers if k == "content-length"}
    if not values:
        return None
    # isascii: str.isdigit() also takes "¹" (a Latin-1 byte 0xB9), which int()
    # refuses with a ValueError that escaped next_event (found by tox -e fuzz-deep).
    if len(values) > 1 or not all(v.isascii() and v.isdigit() for v in values):
        raise MalformedError(f"invalid Content-Length {sorted(values)}")
    length = int(values.pop())
    if length > MAX_HTTP_BODY_BYTES:
        raise LimitExceededError(f"Content-Length of {length:.3g} bytes")
    return length


def _is_chunked(headers: Headers) -> bool:
    codings = [c.strip().lower() for k, v in headers if k == "transfer-encoding"
               for c in v.split(",")]
    return bool(codings) and codings[-1] == "chunked"


@mypyc_attr(allow_interpreted_subclasses=True)  # see libtrace/compiled.py
class Http1Parser(StreamParser):
    """HTTP/1.x over TCP; see the module docstring."""

    protocol = "http1"

    def __init__(self, *, transport: Transport = "tcp", mid_stream: bool = False) -> None:
        super().__init__(transport=transport, mid_stream=mid_stream)
        for side in self._sides.values():
            side.state = _State()
        #: methods of requests whose response has not been framed yet
        self._methods: deque[str] = deque(maxlen=MAX_PENDING_REQUESTS)

    def next_event(self) -> Event | _NeedData:
        """As the base's, except that a response beginning while every earlier request is
        answered and the next request's head is still incomplete means that head was
        cut (its rest lost, or the server answered early): the request comes out
        partial at once, so that it pairs with that response."""
        request = self._sides[REQUEST]
        event = self._step(request)
        if event is not NEED_DATA:
            return event
        if self._head_cut_by_response(request):
            # _kept_partial, not _partial: a header line before the cut that does
            # not parse must not escape next_event (found by tox -e fuzz-deep).
            partial = self._kept_partial(request)
            if partial is not None:
                request.consume(len(request.buf))
                request.resync = True  # what follows the hole is the rest of the head
                return partial
        return self._step(self._sides[RESPONSE])

    def _head_cut_by_response(self, request: Side) -> bool:
        response = self._sides[RESPONSE]
        state = request.state
        return (not self._methods and bool(request.buf) and not request.resync
                and not request.skip and not request.eof and isinstance(state, _State)
                and state.phase is Phase.HEAD
                and bytes(response.buf[:8]).lstrip(b"\r\n").startswith(b"HTTP/"))

    # -- hooks -----------------------------------------------------------------------
    def _reset(self, side: Side) -> None:
        side.state = _State()
        if side.direction is RESPONSE:
            self._methods.clear()

    def _partial(self, side: Side) -> Message | None:
        """A request whose head was cut keeps its request line (and the headers
        before the cut), flagged partial, so that it still pairs with its response."""
        state = side.state
        if side.direction is not REQUEST or not isinstance(state, _State):
            return None
        if state.phase is not Phase.HEAD:
            return None
        buf = bytes(side.buf[:MAX_HTTP_HEAD_BYTES]).lstrip(b"\r\n")
        lines = buf.replace(b"\r\n", b"\n").split(b"\n")
        match = _REQUEST_LINE.fullmatch(lines[0]) if len(lines) > 1 else None
        if match is None:
            return None
        headers = _parse_headers(lines[1:-1])  # the last line is the one cut
        self._methods.append(match.group(1).decode("ascii"))
        return Http1Request(
            ts_ns=side.ts_at(0), size=len(buf), _parsed=True,
            errors=("partial: the header block was cut",),
            method=match.group(1).decode("ascii"), path=clip(match.group(2).decode("latin-1")),
            version=match.group(3).decode("ascii"), host=_header(headers, "host"),
            headers=headers,
        )  # fmt: skip

    def _resync(self, side: Side) -> bool:
        pattern = REQUEST_START if side.direction is REQUEST else RESPONSE_START
        match = pattern.search(side.buf)
        if match is None:
            return False
        side.consume(match.start(1))
        return True

    def _parse(self, side: Side) -> Message | None:
        state = side.state
        assert isinstance(state, _State)
        phase = state.phase
        if phase is Phase.HEAD:
            return self._parse_head(side, state)
        if phase is Phase.BODY:
            return self._finish(side, state, Input.BODY_END)
        if phase is Phase.UNTIL_CLOSE:
            if not side.eof:
                return None
            side.skip = 0
            return self._finish(side, state, Input.BODY_END)
        if phase is Phase.CHUNK_SIZE:
            return self._parse_chunk_size(side, state)
        if phase is Phase.CHUNK_DATA:
            if side.skip:  # the stream ended inside the chunk
                return self._truncated(side, state)
            if len(side.buf) < 2 and side.buf[:1] != b"\n":
                return self._truncated(side, state) if side.eof else None
            end = 1 if side.buf[:1] == b"\n" else 2
            if bytes(side.buf[:end]) not in (b"\r\n", b"\n"):
                raise MalformedError("chunk data not followed by CRLF")
            side.consume(end)
            state.head_size += end
            _advance(state, Input.CHUNK_END)
            return None
        if phase is Phase.TRAILERS:
            if side.buf[:2] == b"\r\n" or side.buf[:1] == b"\n":
                end = 2 if side.buf[:1] == b"\r" else 1
            else:
                match = _HEAD_END.search(side.buf, 0, MAX_HTTP_HEAD_BYTES + 4)
                if match is None:
                    if len(side.buf) > MAX_HTTP_HEAD_BYTES:
                        raise LimitExceededError("trailer section too large")
                    return self._truncated(side, state) if side.eof else None
                end = match.end()
            side.consume(end)
            state.head_size += end
            return self._finish(side, state, Input.BODY_END)
        side.skip = SKIP_TO_EOF  # OPAQUE
        return None

    # -- pieces ------------------------------------------------------------------------
    def _parse_head(self, side: Side, state: _State) -> Message | None:
        buf = side.buf
        blank = len(buf) - len(buf.lstrip(b"\r\n"))
        if blank:  # empty lines between messages are tolerated (RFC 9112 2.2)
            side.consume(blank)
        if not buf:
            return None
        is_request = side.direction is REQUEST
        prefix = bytes(buf[:40])
        if not (_PREFIX_REQUEST if is_request else _PREFIX_RESPONSE).match(prefix):
            raise MalformedError(f"not an HTTP/1 {side.direction.value}: {prefix[:20]!r}")
        match = _HEAD_END.search(buf, 0, MAX_HTTP_HEAD_BYTES + 4)
        if match is None:
            if len(buf) > MAX_HTTP_HEAD_BYTES:
                raise LimitExceededError(f"head larger than {MAX_HTTP_HEAD_BYTES} bytes")
            return None
        head = bytes(buf[: match.start()])
        lines = head.replace(b"\r\n", b"\n").split(b"\n")
        headers = _parse_headers(lines[1:])
        state.ts_ns = side.ts_at(0)
        state.head_size = match.end()
        state.body_size = 0
        side.consume(match.end())
        if is_request:
            return self._request_head(side, state, lines[0], headers)
        return self._response_head(side, state, lines[0], headers)

    def _request_head(self, side: Side, state: _State, line: bytes,
                      headers: Headers) -> Message | None:
        match = _REQUEST_LINE.fullmatch(line)
        if match is None:
            raise MalformedError(f"invalid request line {clip(repr(line), 80)}")
        method = match.group(1).decode("ascii")
        state.head = {
            "method": method,
            "path": clip(match.group(2).decode("latin-1")),
            "version": match.group(3).decode("ascii"),
            "host": _header(headers, "host"),
            "headers": headers,
        }
        self._methods.append(method)
        if _is_chunked(headers):
            _advance(state, Input.CHUNKED)
            return None
        length = _content_length(headers) or 0
        return self._start_body(side, state, length)

    def _response_head(self, side: Side, state: _State, line: bytes,
                       headers: Headers) -> Message | None:
        match = _STATUS_LINE.fullmatch(line)
        if match is None:
            raise MalformedError(f"invalid status line {clip(repr(line), 80)}")
        status = int(match.group(2))
        if 100 <= status < 200 and status != 101:
            return None  # interim response: its request is still waiting
        method = self._methods.popleft() if self._methods else None
        state.head = {
            "status": status,
            "version": match.group(1).decode("ascii"),
            "reason": clip((match.group(3) or b"").decode("latin-1")),
            "content_type": _header(headers, "content-type"),
            "headers": headers,
        }
        if status == 101 or (method == "CONNECT" and 200 <= status < 300):
            _advance(state, Input.UPGRADE)
            request_state = self._sides[REQUEST].state
            assert isinstance(request_state, _State)
            request_state.phase = Phase.OPAQUE
            return self._emit(side, state)
        if method == "HEAD" or status in (204, 304):
            return self._start_body(side, state, 0)
        if _is_chunked(headers):
            _advance(state, Input.CHUNKED)
            return None
        length = _content_length(headers)
        if length is None:
            _advance(state, Input.UNTIL_CLOSE)
            side.skip = SKIP_TO_EOF
            return None
        return self._start_body(side, state, length)

    def _start_body(self, side: Side, state: _State, length: int) -> Message | None:
        if length == 0:
            _advance(state, Input.NO_BODY)
            return self._emit(side, state)
        _advance(state, Input.LENGTH)
        state.body_size = length
        side.skip = length
        return None

    def _parse_chunk_size(self, side: Side, state: _State) -> Message | None:
        end = side.buf.find(b"\n", 0, 1024)
        if end < 0:
            if len(side.buf) >= 1024:
                raise MalformedError("chunk-size line too long")
            return self._truncated(side, state) if side.eof else None
        line = bytes(side.buf[:end]).rstrip(b"\r").split(b";", 1)[0].strip()
        try:
            size = int(line, 16)
        except ValueError:
            raise MalformedError(f"invalid chunk size {line[:20]!r}") from None
        if size < 0:
            raise MalformedError("negative chunk size")
        if size > MAX_HTTP_BODY_BYTES:
            raise LimitExceededError(f"chunk size of {size:.3g} bytes")
        side.consume(end + 1)
        state.head_size += end + 1
        if size == 0:
            _advance(state, Input.LAST_CHUNK)
            return None
        _advance(state, Input.CHUNK)
        state.body_size += size
        side.skip = size
        return None

    def _finish(self, side: Side, state: _State, event: Input) -> Message | None:
        if side.skip and side.skip != SKIP_TO_EOF:
            return self._truncated(side, state) if side.eof else None
        _advance(state, event)
        return self._emit(side, state)

    def _truncated(self, side: Side, state: _State) -> Message:
        missing = side.skip
        side.skip = 0
        side.consume(len(side.buf))
        state.phase = Phase.HEAD
        return self._emit(side, state, errors=(f"stream ended with {missing} body bytes missing",)
                          if missing else ("stream ended inside the body",))

    def _emit(self, side: Side, state: _State, errors: tuple[str, ...] = ()) -> Message:
        fields = state.head
        state.head = {}
        size = state.head_size + state.body_size
        if side.direction is REQUEST:
            return Http1Request(ts_ns=state.ts_ns, size=size, errors=errors,
                                body_size=state.body_size, _parsed=True, **fields)  # type: ignore[arg-type]
        return Http1Response(ts_ns=state.ts_ns, size=size, errors=errors,
                             body_size=state.body_size, _parsed=True, **fields)  # type: ignore[arg-type]


# Inference: whether a direction's first bytes are this protocol's.

_HTTP1_REQUEST = re.compile(rb"(?:" + "|".join(METHODS).encode() + rb") \S+ HTTP/1\.[01]\r?\n")
_HTTP1_REQUEST_PREFIX = re.compile(rb"(?:" + "|".join(METHODS).encode() + rb") /")
_HTTP1_RESPONSE = re.compile(rb"HTTP/1\.[01] [1-5]\d\d[ \r\n]")


def _signature(data: bytes, udp: bool) -> Match:
    if udp:
        return None
    if _HTTP1_REQUEST.match(data):
        return 0.95, REQUEST
    if _HTTP1_RESPONSE.match(data):
        return 0.95, RESPONSE
    if _HTTP1_REQUEST_PREFIX.match(data):
        return 0.6, REQUEST
    return None


# What libtrace knows of the protocol (see _spec.py): its signature for
# inference, above, and the rest.
def redact(message: Message, redaction: Redaction) -> Message:
    """Credential headers (Authorization, Cookie, Set-Cookie, ...) and
    credential-like query parameters of the request target, replaced."""
    if isinstance(message, Http1Request):
        path, headers = redaction.path(message.path), redaction.header_pairs(message.headers)
        if path is not message.path or headers is not message.headers:
            return dataclasses.replace(message, path=path or "", headers=headers)
    elif isinstance(message, Http1Response):
        headers = redaction.header_pairs(message.headers)
        if headers is not message.headers:
            return dataclasses.replace(message, headers=headers)
    return message


SPEC = ProtocolSpec(
    name="http1",
    title="HTTP/1",
    parser=Http1Parser,
    signature=_signature,
    ports=frozenset({80, 8000, 8080, 8081, 8888}),
    request_summary=("method", "path"),
    response_summary=("status", "reason"),
    redact=redact,
)

"""The connection-level parser every protocol builds on.

Theory of operation
-------------------
A :class:`StreamParser` sees both directions of one connection (or the
datagrams of one UDP flow).  :meth:`StreamParser.feed` only buffers: it
appends bytes to that direction's :class:`Side` together with their
timestamp, and ``b""`` marks the end of the direction.
:meth:`StreamParser.next_event` then pulls one event at a time, request
side first, until it returns :data:`NEED_DATA`.

A protocol implements three hooks, each working on one :class:`Side`:

``_parse(side)``
    Look at ``side.buf``.  If it holds a complete message, consume its bytes
    with ``side.consume(n)`` and return the :class:`Message`; if not, return
    ``None`` and touch nothing.  Raise a :class:`ProtocolError` subclass on
    bytes that cannot be the protocol.  To step over a body without
    buffering it, set ``side.skip = n`` (or :data:`SKIP_TO_EOF`) and return
    ``None``: the base discards those bytes, even ones fed later, and calls
    ``_parse`` again once they are gone.  ``_parse`` is also called after the
    direction ended (``side.eof``) so that a read-until-close body can finish.
``_resync(side)``
    Find the next plausible message start in ``side.buf``, consume the bytes
    before it and return ``True``; or return ``False`` to wait for more
    bytes (the base then keeps only the last :data:`MAX_RESYNC_TAIL` bytes).
``_reset(side)``
    Forget per-direction protocol state after a gap (optional).

Errors never escape ``next_event``: a :class:`ProtocolError` from ``_parse``,
a gap reported with :meth:`StreamParser.feed_gap`, or a buffer beyond
:data:`MAX_BUFFER_BYTES` becomes one :class:`Desync` event, after which the
side is resynchronised.  Every step either consumes bytes, emits an event or
returns ``NEED_DATA``, so the loop ``while (e := p.next_event()) is not
NEED_DATA`` always ends.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar, Final, Literal

from mypy_extensions import mypyc_attr

from ..errors import ProtocolError
from ._events import NEED_DATA, REQUEST, RESPONSE, Desync, Direction, Event, Message, _NeedData
from ._limits import MAX_BUFFER_BYTES, MAX_RESYNC_TAIL

#: ``side.skip`` value that discards everything up to the end of the direction.
SKIP_TO_EOF: Final = 1 << 62
#: Buffered bytes that no parse pulled: feed drops them.  Final, so that compiled
#: code reads no module dictionary per chunk.
_NEVER_PULLED: Final = 2 * MAX_BUFFER_BYTES

Transport = Literal["tcp", "udp"]


class Side:
    """The buffered bytes and parsing state of one direction."""

    __slots__ = ("_buf", "_first_ts", "_lazy", "_marks", "consumed", "datagrams", "direction",
                 "eof", "head", "head_at", "partial", "pending", "resync", "skip", "state")

    def __init__(self, direction: Direction) -> None:
        self.direction = direction
        #: bytes fed and not yet consumed, but for those of a lazy ``head``
        self._buf = bytearray()
        #: while ``buf`` holds the rest of one chunk fed into an empty buffer (most
        #: messages, and pipelined ones after the first), that chunk: ``buf`` is
        #: ``head[head_at:]``, and a reader that wants ``bytes`` reads it there
        #: instead of copying ``buf``
        self.head: bytes | None = None
        self.head_at = 0
        #: ``head[head_at:]`` is all the buffered bytes, not yet copied into
        #: ``_buf``: a message read from ``head`` (Redis's fast readers) and
        #: consumed whole costs no copy in and no clear (the growing and
        #: shrinking of the bytearray were a tenth of a Redis record's
        #: instructions); reading ``buf`` copies it in
        self._lazy = False
        #: stream offset of ``buf[0]``
        self.consumed = 0
        #: ts_ns of the chunk that carried ``buf[0]`` (the last one fed, once all
        #: is consumed); an int attribute, so that a message of one chunk, as
        #: most are, costs no list, tuple or boxed int
        self._first_ts = 0
        #: (stream offset, ts_ns) of each later chunk still (partly) in ``buf``:
        #: a list, not a deque (compiled, a list's append and indexing are C
        #: calls, a deque's are Python method calls)
        self._marks: list[tuple[int, int]] = []
        #: the direction has ended (``b""`` was fed)
        self.eof = False
        #: hunting for a message start (mid-stream start, after a gap or error)
        self.resync = False
        #: bytes still to discard before parsing resumes
        self.skip = 0
        #: a Desync waiting to be emitted
        self.pending: Desync | None = None
        #: what a parser kept of a message the bytes were cut in (before ``pending``)
        self.partial: Message | None = None
        #: UDP: whole datagrams with their timestamps
        self.datagrams: deque[tuple[bytes, int]] = deque()
        #: the protocol's own state for this direction (a free slot)
        self.state: object = None

    @property
    def buf(self) -> bytearray:
        """The buffered bytes (a parser may read them, never change them)."""
        if self._lazy:
            self._copy_head()
        return self._buf

    def size(self) -> int:
        """``len(buf)``, without copying a lazy ``head`` in."""
        head = self.head
        if self._lazy and head is not None:
            return len(head) - self.head_at
        return len(self._buf)

    def first(self) -> int:
        """``buf[0]``, or -1 if nothing is buffered, without copying a lazy ``head`` in."""
        head = self.head
        if self._lazy and head is not None:
            return head[self.head_at] if self.head_at < len(head) else -1
        return self._buf[0] if self._buf else -1

    def _copy_head(self) -> None:
        head = self.head
        if head is not None:
            self._buf += head if self.head_at == 0 else head[self.head_at:]
        self._lazy = False

    def ts_at(self, pos: int = 0) -> int:
        """The timestamp of the chunk that carried ``buf[pos]``."""
        marks = self._marks
        ts = self._first_ts
        if not marks:  # one chunk buffered, as for most messages: no walk
            return ts
        target = self.consumed + pos
        for offset, mark_ts in marks:
            if offset > target:
                break
            ts = mark_ts
        return ts

    @property
    def last_ts(self) -> int:
        """The timestamp of the latest chunk fed."""
        return self._marks[-1][1] if self._marks else self._first_ts

    def append(self, data: bytes, ts_ns: int) -> None:
        size = self.size()
        if size:
            if self._lazy:
                self._copy_head()
            self.head = None
            self._marks.append((self.consumed + size, ts_ns))
            self._buf += data
            return
        # Nothing buffered: this chunk's mark covers every byte (consume()
        # has dropped the later marks).
        self._first_ts = ts_ns
        if self._marks:
            self._marks.clear()
        self.head_at = 0
        if type(data) is bytes:
            self.head = data
            self._lazy = True
        else:
            self.head = None
            self._lazy = False
            self._buf += data

    def consume(self, n: int) -> None:
        """Drop the first ``n`` buffered bytes."""
        size = self.size()
        n = min(n, size)
        self.head_at += n
        if self._lazy:
            # head[head_at:] is what is left; all of it gone, nothing is buffered.
            self._lazy = n < size
        elif n == size:
            # All of it: compiled, a method call costs half of deleting a slice
            # (a slice object, then the generic item protocol).
            self._buf.clear()
        else:
            del self._buf[:n]
        self.consumed += n
        # The last mark at or before buf[0] becomes the first; those before it go.
        marks = self._marks
        if marks and marks[0][0] <= self.consumed:
            drop = 1
            while drop < len(marks) and marks[drop][0] <= self.consumed:
                drop += 1
            self._first_ts = marks[drop - 1][1]
            del marks[:drop]  # at once: a message of many chunks is one memmove

    def apply_skip(self) -> None:
        size = self.size()
        if self.skip and size:
            n = min(self.skip, size)
            self.consume(n)
            if self.skip != SKIP_TO_EOF:
                self.skip -= n

    def desync(self, ts_ns: int, reason: str, *, partial: Message | None = None) -> None:
        """Enter resync mode and queue one Desync event (the first reason wins),
        after ``partial``, what was kept of the message the bytes were cut in."""
        self.resync = True
        self.skip = 0
        if self.pending is None:
            self.partial = partial
            self.pending = Desync(direction=self.direction, ts_ns=ts_ns, reason=reason,
                                  kept_order=partial is not None)  # fmt: skip


def _direction(direction: Direction | str) -> Direction:
    """``direction`` as a :class:`Direction` (calling the enum costs a Python-level
    call per chunk, so only a string is converted)."""
    return direction if isinstance(direction, Direction) else Direction(direction)


@mypyc_attr(allow_interpreted_subclasses=True)  # see libtrace/compiled.py
class StreamParser:
    """Base class of the protocol parsers; see the module docstring.

    Args:
        transport: ``"tcp"`` (a byte stream per direction) or ``"udp"`` (each
            ``feed`` is one datagram).
        mid_stream: the capture starts inside the connection: hunt for a
            message start before parsing.
    """

    #: the registry name of the protocol
    protocol: ClassVar[str] = ""
    #: transports the protocol runs over
    transports: ClassVar[tuple[Transport, ...]] = ("tcp",)
    #: ``_parse`` makes nothing of an empty buffer (it keeps no ready messages nor
    #: a body that ends by itself), so the loop need not call it then: each
    #: ``events()`` would otherwise parse both directions' empty buffers once more
    #: after every message.  A parser says so only when it is true.
    idle_when_empty: ClassVar[bool] = False

    def __init__(self, *, transport: Transport = "tcp", mid_stream: bool = False) -> None:
        if transport not in self.transports:
            raise ValueError(f"{self.protocol} does not run over {transport}")
        self.transport: Transport = transport
        # A bool for the per-chunk tests: compiled, comparing the string is a call.
        self._udp = transport == "udp"
        self.mid_stream = mid_stream
        # An instance attribute: a compiled parser reads it without a class lookup.
        self._idle_when_empty = type(self).idle_when_empty
        self._sides = {d: Side(d) for d in Direction}
        for side in self._sides.values():
            side.resync = mid_stream and transport == "tcp"
        # The two sides by name as well, for the per-chunk paths: compiled, an
        # attribute is a load where the dictionary is a lookup or an iteration.
        self._request_side = self._sides[REQUEST]
        self._response_side = self._sides[RESPONSE]

    # -- the public API --------------------------------------------------------
    def feed(self, direction: Direction | str, data: bytes, ts_ns: int) -> None:
        """Buffer ``data`` sent in ``direction`` at ``ts_ns``; ``b""`` ends the direction.

        Args:
            direction: ``"request"`` (client to server) or ``"response"``.
            data: the bytes (for UDP, exactly one datagram).
            ts_ns: when they were seen, in nanoseconds.
        """
        side = self._request_side if _direction(direction) is REQUEST else self._response_side
        if not data:
            side.eof = True
            return
        if self._udp:
            if len(side.datagrams) < MAX_BUFFER_BYTES // 512:
                side.datagrams.append((bytes(data), ts_ns))
            return
        if side.skip:
            n = min(side.skip, len(data))
            data = data[n:]
            if side.skip != SKIP_TO_EOF:
                side.skip -= n
            if not data:
                return
        if side.size() + len(data) > _NEVER_PULLED:
            # Never pulled: drop the lot rather than grow without bound.
            side.consume(side.size())
            side.desync(ts_ns, "buffer limit exceeded before parsing")
            self._reset(side)
        side.append(data, ts_ns)

    def feed_gap(self, direction: Direction | str, size: int, ts_ns: int) -> None:
        """Report ``size`` bytes missing in ``direction`` (a capture hole)."""
        side = self._sides[_direction(direction)]
        if side.skip and side.skip != SKIP_TO_EOF and size <= side.skip and not side.size():
            side.skip -= size  # the hole falls inside a body we were skipping anyway
            return
        partial = self._kept_partial(side)
        side.consume(side.size())
        side.desync(ts_ns, f"{size} bytes missing", partial=partial)
        self._reset(side)

    def buffered(self) -> int:
        """Bytes this parser holds now (both directions' buffers and datagrams)."""
        return sum(self.buffered_in(direction) for direction in self._sides)

    def buffered_in(self, direction: Direction) -> int:
        """Bytes this parser holds of one direction."""
        side = self._sides[direction]
        return side.size() + sum(len(data) for data, _ in side.datagrams)

    def next_event(self) -> Event | _NeedData:
        """The next message or desync, or :data:`NEED_DATA`."""
        event = self._step(self._request_side)
        return event if event is not NEED_DATA else self._step(self._response_side)

    def events(self) -> list[Event]:
        """Every event available now (``next_event`` until ``NEED_DATA``)."""
        out: list[Event] = []
        while not isinstance(event := self.next_event(), _NeedData):
            out.append(event)
        return out

    # -- the loop ------------------------------------------------------------------
    def _step(self, side: Side) -> Event | _NeedData:
        if side.partial is not None:
            kept, side.partial = side.partial, None
            return kept
        if side.pending is not None:
            desync, side.pending = side.pending, None
            return desync
        if self._udp:
            return self._step_datagram(side)
        while True:
            if side.skip:
                side.apply_skip()
                if side.skip and not side.eof:
                    return NEED_DATA
            if side.resync:
                if side.eof and not side.size():
                    return NEED_DATA
                if not self._resync(side):
                    if side.size() > MAX_RESYNC_TAIL:
                        side.consume(side.size() - MAX_RESYNC_TAIL)
                    if side.eof:
                        side.consume(side.size())
                    return NEED_DATA
                side.resync = False
                continue
            size, skip = side.size(), side.skip
            if not size and self._idle_when_empty:
                return NEED_DATA
            try:
                message = self._parse(side)
            except ProtocolError as exc:
                ts = side.ts_at(0)
                if side.size() == size:
                    # Progress is guaranteed: the resync starts past here.  (A
                    # parser that consumed the bad message has made progress, and
                    # the next byte begins the next message.)
                    side.consume(1)
                side.desync(ts, f"{type(exc).__name__}: {exc}")
                self._reset(side)
                return self._step(side)
            if message is not None:
                return message
            if side.size() != size or side.skip != skip:
                continue  # a body started or a part was consumed: go on
            if size > MAX_BUFFER_BYTES:
                side.consume(size)
                side.desync(side.last_ts, f"message larger than {MAX_BUFFER_BYTES} bytes")
                self._reset(side)
                return self._step(side)
            if side.eof and size:
                ts = side.ts_at(0)
                partial = self._kept_partial(side)
                side.consume(side.size())
                side.desync(ts, "stream ended inside a message", partial=partial)
                self._reset(side)
                return self._step(side)
            return NEED_DATA

    def _step_datagram(self, side: Side) -> Event | _NeedData:
        while side.datagrams:
            data, ts = side.datagrams.popleft()
            try:
                return self._parse_datagram(side, data, ts)
            except ProtocolError as exc:
                return Desync(direction=side.direction, ts_ns=ts,
                              reason=f"{type(exc).__name__}: {exc}")
        return NEED_DATA

    # -- hooks -------------------------------------------------------------------------
    def _parse(self, side: Side) -> Event | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _resync(self, side: Side) -> bool:
        """Default: no way to find a boundary; drop everything and wait."""
        side.consume(side.size())
        return False

    def _reset(self, side: Side) -> None:
        """Forget protocol state of ``side`` after a gap or an error."""

    def _kept_partial(self, side: Side) -> Message | None:
        """:meth:`_partial`, which must not raise either: a cut message that
        does not even read as a partial one is not kept."""
        try:
            return self._partial(side)
        except ProtocolError:
            return None

    def _partial(self, side: Side) -> Message | None:
        """What can be kept of the message ``side.buf`` begins, which missing bytes
        or the end of the stream cut (default: nothing)."""
        return None

    def _parse_datagram(self, side: Side, data: bytes, ts_ns: int) -> Event:
        raise NotImplementedError  # pragma: no cover - only UDP protocols

"""Per-connection stream reassembly, ordered by the kernel's byte offsets.

Every data event says at which byte of its socket's stream (per direction)
its chunk starts.  Chunks may arrive out of order (the perf buffer is per
CPU) and may be incomplete (the payload cap, iovecs beyond those followed,
lost events).  :class:`StreamReassembler` releases bytes strictly in stream
order, holds early chunks back for a while, and reports every hole as a
gap of a known size — it never glues the two sides of a hole together.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from ..frozen import hand_init
from ..tracer.events import Direction, SocketEvent

#: Early chunks held back per stream while waiting for the missing bytes
#: before them; past this the hole is declared a gap.  Reordering spans at
#: most one buffer batch per CPU, so a few dozen chunks are plenty.
MAX_PENDING_CHUNKS = 64


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """Contiguous bytes of one direction of one connection."""

    key: tuple[int, int, Direction]  #: (pid, fd, direction)
    offset: int
    data: bytes
    gap: int = 0  #: bytes missing right before this chunk
    event: SocketEvent | None = None  #: the event the bytes came from

    def __init__(  # pragma: no cover
        self, key: tuple[int, int, Direction], offset: int, data: bytes, gap: int = 0,
        event: SocketEvent | None = None,
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.key = key  # type: ignore[misc]
        self.offset = offset  # type: ignore[misc]
        self.data = data  # type: ignore[misc]
        self.gap = gap  # type: ignore[misc]
        self.event = event  # type: ignore[misc]

    @property
    def ts_ns(self) -> int:
        """When its event was seen (0 for none): with ``data`` and ``gap``, what a
        :class:`~libtrace.flows.Conversation` takes of a chunk."""
        return self.event.ts_ns if self.event is not None else 0


hand_init(StreamChunk)


@dataclass(slots=True)
class Stream:
    """One direction of one connection in a :class:`StreamReassembler`: a handle
    that a caller may keep (the live pipeline keeps its connections') to skip
    the lookup per chunk."""

    key: tuple[int, int, Direction]  #: (pid, fd, direction), as its chunks carry it
    next_offset: int = 0
    pending: dict[int, SocketEvent] = field(default_factory=dict)
    held: int = 0  #: bytes of the pending chunks
    #: False once the reassembler let it go (:meth:`StreamReassembler.close`,
    #: ``flush``): a handle kept past then is stale, and its owner asks again
    open: bool = True


#: A module constant: compiled code reads it directly (see records/live.py).
_INGRESS: Final = Direction.INGRESS


def socket_slot(pid: int, fd: int, bit: int) -> int:
    """``(pid, fd)`` and one bit more (0 or 1) as one int, a dictionary key that
    compiled code hashes and compares in C (a tuple's hash calls each item's;
    the ``Direction`` enum's is a Python-level call).  fd: a 32-bit number."""
    return pid << 33 | (fd & 0xFFFFFFFF) << 1 | bit


def _slot(pid: int, fd: int, direction: Direction) -> int:
    """A stream's key in :attr:`StreamReassembler._streams`."""
    return socket_slot(pid, fd, 1 if direction is _INGRESS else 0)


class StreamReassembler:
    """Feed data events of any connections; get their bytes in stream order."""

    def __init__(self, max_pending: int = MAX_PENDING_CHUNKS) -> None:
        #: by _slot(pid, fd, direction)
        self._streams: dict[int, Stream] = {}
        self._max_pending = max_pending

    def stream(self, pid: int, fd: int, direction: Direction) -> Stream:
        """The stream of (``pid``, ``fd``) in ``direction`` (a new one if none is open)."""
        slot = _slot(pid, fd, direction)
        stream = self._streams.get(slot)
        if stream is None:
            stream = self._streams[slot] = Stream((pid, fd, direction))
        return stream

    def feed(self, event: SocketEvent) -> list[StreamChunk]:
        """Take one data event; return whatever is now in order."""
        # Every stream starts at offset 0: the kernel counts from the moment
        # it first sees a socket.  An early chunk that overtakes it (the perf
        # buffer is per CPU and read CPU by CPU) waits for it; if it never
        # comes (lost), the hole becomes a gap.
        stream = self.stream(event.pid, event.fd, event.direction)
        offset = event.offset
        if offset < stream.next_offset:
            return []  # a duplicate or a late chunk already declared a gap
        if offset == stream.next_offset and not stream.pending:
            # In order with nothing held back, as nearly every chunk is: out at
            # once, without a stay in the pending table or a generator.
            return self._out(stream, event, 0)
        replaced = stream.pending.get(offset)
        stream.held += len(event.data) - (len(replaced.data) if replaced is not None else 0)
        stream.pending[offset] = event
        return list(self._release(stream, force=len(stream.pending) > self._max_pending))

    @staticmethod
    def take_in_order(stream: Stream, offset: int, size: int, captured: int) -> bool:
        """:meth:`feed`'s common case without a chunk object: whether a chunk of
        ``size`` bytes at ``offset``, ``captured`` of them, is whole and next in
        ``stream`` (an open one, from :meth:`stream`) with nothing held back.
        Then the stream goes on past it and the caller takes the event's bytes as
        they are (the live pipeline's hot path: one chunk and no lists);
        otherwise nothing changes, and the event goes to :meth:`feed`."""
        if offset != stream.next_offset or stream.pending or captured != size or not size:
            return False
        stream.next_offset = offset + size
        return True

    def held(self, pid: int, fd: int) -> int:
        """Bytes held back for (``pid``, ``fd``), both directions: early chunks that
        wait for the bytes before them (what a memory budget counts besides parsers)."""
        held = 0
        for direction in Direction:
            stream = self._streams.get(_slot(pid, fd, direction))
            if stream is not None:
                held += stream.held
        return held

    def release(self, pid: int, fd: int) -> Iterator[StreamChunk]:
        """Give up waiting for (``pid``, ``fd``): release what is held back, every
        hole before it declared a gap; the streams go on from there."""
        for direction in Direction:
            stream = self._streams.get(_slot(pid, fd, direction))
            if stream is not None and stream.pending:
                yield from self._release(stream, force=True, drain=True)

    @staticmethod
    def _out(stream: Stream, event: SocketEvent, gap: int) -> list[StreamChunk]:
        """``event``'s chunk, after ``gap`` missing bytes; the stream goes on past it."""
        key = stream.key
        stream.next_offset = event.offset + event.size
        chunks = [StreamChunk(key, event.offset, event.data, gap, event)]
        # A chunk cut by the payload cap leaves a hole after its bytes,
        # reported at once (a parser should not wait for bytes that will
        # never come): a chunk of no data at the hole's end.
        if len(event.data) < event.size:
            chunks.append(StreamChunk(key, stream.next_offset, b"", event.size - len(event.data),
                                      event))  # fmt: skip
        return chunks

    def close(self, pid: int, fd: int) -> Iterator[StreamChunk]:
        """The connection is closed: flush both directions, gaps and all."""
        for direction in Direction:
            stream = self._streams.pop(_slot(pid, fd, direction), None)
            if stream is not None:
                stream.open = False
                yield from self._release(stream, force=True, drain=True)

    def flush(self) -> Iterator[StreamChunk]:
        """Release everything held back (end of capture)."""
        for pid, fd, _ in [stream.key for stream in self._streams.values()]:
            yield from self.close(pid, fd)

    def _release(
        self, stream: Stream, *, force: bool, drain: bool = False
    ) -> Iterator[StreamChunk]:
        while stream.pending:
            event = stream.pending.pop(stream.next_offset, None)
            gap = 0
            if event is None:
                if not (force or drain):
                    return
                # Declare the hole before the earliest chunk held back.
                first = min(stream.pending)
                gap += first - stream.next_offset
                event = stream.pending.pop(first)
                force = False
            stream.held -= len(event.data)
            yield from self._out(stream, event, gap)

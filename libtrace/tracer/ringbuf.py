"""The BPF ring buffer read straight from its memory mapping, with no call per record.

libbpf's ``ring_buffer__consume`` hands each record to a callback; from
Python that is a ctypes call per record, which cost more than decoding the
record (``benchmarks/drain.py``).  This reader maps the ring as libbpf does
and walks the records itself, in compiled code where the package has it
(``_ringdecode.c``, which also decodes each record into its event: no Python
call per record at all), else in Python:

- the consumer position, one page mapped read-write at offset 0;
- the producer position, one read-only page at offset ``PAGE_SIZE``, followed
  by the data pages mapped twice in a row, so that a record that wraps around
  the end is contiguous in the mapping.

Each record starts with an 8-byte header whose first u32 is its length and two
flags: BUSY (the producer has reserved it and not yet committed) and DISCARD
(committed as dropped).  Records are 8-byte aligned.  A reader stops at the
first busy record and publishes how far it has read by storing the consumer
position, which frees that space for the producers (kernel/bpf/ringbuf.c).

The kernel orders its stores with release semantics and libbpf its loads with
acquire, as the compiled walk does; on x86-64 (total store order) plain loads
already see the stores in order, so Python's reads are enough there.
:func:`usable` says where this reader may be used; elsewhere the tracer keeps
libbpf's.  Each position and
length is read and written whole, through memoryviews cast to the native
``Q``/``I`` (one aligned load or store): ``struct``'s little-endian codes go
byte by byte, and a producer that read a half-written consumer position saw
the ring full and dropped the event (seen here: a few per 100 000).
"""

from __future__ import annotations

import errno
import mmap
import platform
import select
from collections.abc import Callable
from types import ModuleType
from typing import Self

from ..errors import BpfError
from .events import SocketEvent, native_decoder

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
HEADER_BYTES = 8

#: Plain loads see the kernel's stores in order here (total store order).
STORE_ORDERED = platform.machine() in ("x86_64", "AMD64")


def usable() -> bool:
    """Whether this reader works here: decoding in compiled code (whose loads
    and stores are ordered) anywhere, in Python where :data:`STORE_ORDERED`."""
    return native_decoder() is not None or STORE_ORDERED


#: ``on_events(events, process_events, not_events)``: what one read decoded.
EventSink = Callable[[list[SocketEvent], list[SocketEvent], int], None]


class MappedRingBuffer:
    """Reader of a ``BPF_MAP_TYPE_RINGBUF`` map of ``size`` data bytes;
    ``callback(record)`` per record, as :class:`~libtrace.tracer._libbpf.RingBuffer`."""

    def __init__(
        self,
        map_fd: int,
        size: int,
        callback: Callable[[bytes], None],
        *,
        max_batch: int = 0,
        on_events: EventSink | None = None,
    ) -> None:
        """``max_batch`` > 0 caps the records one :meth:`poll` or :meth:`consume`
        hands over (the events, with the compiled decoder: a record may be a
        CPU's batch of them, taken whole), so one call ends even while
        producers keep producing.

        With ``on_events`` and the compiled decoder, records are decoded into
        :class:`~libtrace.tracer.events.SocketEvent` in compiled code, and each
        read hands them over in one call instead of ``callback`` per record."""
        #: the compiled module, looked up once; None: records walked in Python
        self._compiled = native_decoder() if on_events is not None else None
        if self._compiled is None:
            on_events = None
        if on_events is None and not STORE_ORDERED:
            raise BpfError("map the ring buffer", errno.ENOTSUP,
                           "reading it in Python needs x86-64's store order")  # fmt: skip
        if size <= 0 or size & (size - 1):
            raise ValueError(f"a ring buffer's size is a power of two, not {size}")
        page = mmap.PAGESIZE
        self._callback = callback
        self._on_events = on_events
        self._max_batch = max_batch
        self._mask = size - 1
        self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED,
                                   mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        try:
            self._producer = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED,
                                       mmap.PROT_READ, offset=page)
        except BaseException:
            self._consumer.close()
            raise
        self._data: memoryview | None = memoryview(self._producer)[page:]
        # Whole-word views: [0] of the first two, [offset // 4] of the third.
        self._consumer_pos = memoryview(self._consumer).cast("Q")
        self._producer_pos = memoryview(self._producer)[:8].cast("Q")
        self._words = self._data.cast("I")
        self._epoll = select.epoll()
        self._epoll.register(map_fd, select.EPOLLIN)

    def poll(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` for the kernel's wakeup, then consume.

        Returns the number of records handed to the callback; raises the
        first exception the callback raised (the record it failed on is
        consumed, the ones after it are kept).
        """
        self._live()
        self._epoll.poll(timeout_ms / 1000)
        return self.consume()

    def consume(self) -> int:
        """Hand over the records available now, without waiting; see :meth:`poll`."""
        data = self._live()
        if self._compiled is not None and self._on_events is not None:
            return self._consume_compiled(self._compiled, data, self._on_events)
        mask, callback, limit = self._mask, self._callback, self._max_batch or -1
        consumer, producer, words = self._consumer_pos, self._producer_pos, self._words
        position = consumer[0]
        count = 0
        while count != limit:
            end = producer[0]
            if position >= end:
                break
            while position < end and count != limit:
                at = position & mask
                word = words[at >> 2]
                if word & BUSY_BIT:
                    return count  # not committed yet: the next call resumes here
                length = word & ~(BUSY_BIT | DISCARD_BIT)
                start = at + HEADER_BYTES
                record = None if word & DISCARD_BIT else data[start : start + length].tobytes()
                # Published once copied (producers may reuse the space at once),
                # and before the callback, which may raise: the record is consumed.
                position += (length + HEADER_BYTES + 7) & ~7
                consumer[0] = position
                if record is not None:
                    count += 1
                    callback(record)
        return count

    def _consume_compiled(
        self, compiled: ModuleType, data: memoryview, on_events: EventSink
    ) -> int:
        events: list[SocketEvent] = []
        process: list[SocketEvent] = []
        count, not_events = 0, 0
        try:
            count, not_events = compiled.consume(
                self._consumer, self._producer_pos, data, self._mask, self._max_batch,
                events, process,
            )  # fmt: skip
        finally:
            # What was decoded before an exception is consumed: hand it over.
            on_events(events, process, not_events)
        return int(count)

    def epoll_fd(self) -> int:
        """An epoll fd that turns readable when the kernel wakes the reader."""
        self._live()
        return self._epoll.fileno()

    def close(self) -> None:
        """Unmap the ring.  Idempotent."""
        if self._data is None:
            return
        for view in (self._words, self._producer_pos, self._consumer_pos, self._data):
            view.release()
        self._data = None
        self._epoll.close()
        self._producer.close()
        self._consumer.close()

    def _live(self) -> memoryview:
        if self._data is None:
            raise BpfError("read the ring buffer", errno.EBADF, "it is closed")
        return self._data

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.close()

"""The perf buffer's rings read and decoded in compiled code, with no call per record.

libbpf's ``perf_buffer__poll`` hands each sample to a callback; from Python
that is a ctypes call per event, the largest cost of the old-kernel (perf
buffer) variant.  This reader keeps libbpf for what it does once (opening a
perf event per CPU, mapping its ring, the epoll set) and walks each ring
itself through ``_ringdecode.consume_perf``: the ring's header page holds
``data_head`` (the kernel's write position) and ``data_tail`` (ours); each
record is a ``perf_event_header`` followed, for a sample, by its u32 size and
the event, and a ``PERF_RECORD_LOST`` notice says how many samples that ring
dropped.  Unlike the BPF ring buffer a perf ring is mapped once, so a record
that wraps around the end is copied whole before it is decoded.
"""

from __future__ import annotations

import errno
import mmap
import select
from collections.abc import Callable
from typing import Any, Self

from ..errors import BpfError
from . import _libbpf
from .events import native_decoder
from .ringbuf import EventSink

#: ``on_lost(ring, count)``: samples the kernel dropped on one ring.
LostSink = Callable[[int, int], None]


def usable(buffer: _libbpf.PerfBuffer) -> bool:
    """Whether the compiled decoder and libbpf (1.0+: the rings' mappings) allow it."""
    return native_decoder() is not None and buffer.rings() is not None


class DecodingPerfBuffer:
    """A :class:`~libtrace.tracer._libbpf.PerfBuffer` (which it owns and closes)
    read ring by ring in compiled code; see the module docstring."""

    def __init__(
        self, buffer: _libbpf.PerfBuffer, on_events: EventSink, on_lost: LostSink,
        *, max_batch: int = 0,
    ) -> None:  # fmt: skip
        rings = buffer.rings()
        compiled = native_decoder()
        if rings is None or compiled is None:
            raise RuntimeError("the compiled perf buffer reader is not available here")
        self._buffer: _libbpf.PerfBuffer | None = buffer
        self._rings = rings
        self._consume_perf = compiled.consume_perf
        self._on_events, self._on_lost = on_events, on_lost
        self._max_batch = max_batch

    def poll(self, timeout_ms: int) -> int:
        """Wait up to ``timeout_ms`` for a wakeup of any ring, then :meth:`consume`."""
        select.select([self.epoll_fd()], [], [], max(0, timeout_ms) / 1000)
        return self.consume()

    def consume(self) -> int:
        """Decode what every ring holds now; the number of samples read.  At most
        ``max_batch`` per ring, so that one call ends under a steady producer."""
        self._live()
        total = 0
        for index, (address, size) in enumerate(self._rings):
            events: list[Any] = []
            process: list[Any] = []
            count, not_events, lost = 0, 0, 0
            try:
                count, not_events, lost = self._consume_perf(
                    address, size, mmap.PAGESIZE, self._max_batch, events, process
                )
            finally:
                # What was decoded before an exception is consumed: hand it over.
                self._on_events(events, process, not_events)
            if lost:
                self._on_lost(index, lost)
            total += count
        return total

    def epoll_fd(self) -> int:
        return self._live().epoll_fd()

    def close(self) -> None:
        """Free the buffer (and its mappings).  Idempotent."""
        if self._buffer is not None:
            buffer, self._buffer = self._buffer, None
            buffer.close()

    def _live(self) -> _libbpf.PerfBuffer:
        if self._buffer is None:
            raise BpfError("read the perf buffer", errno.EBADF, "it is closed")
        return self._buffer

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.close()

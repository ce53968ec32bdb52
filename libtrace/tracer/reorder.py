"""Events handed over in time order, whatever the buffer and the kernel.

The BPF ring buffer is one queue for all CPUs, in output order.  The perf
buffer is one ring per CPU, read one after another: a thread that migrates
between its request (written on CPU 0) and the response it reads (CPU 1) can
have the response read first, and a parser then sees an answer before its
question.  The BPF ring buffer keeps output order, which is time order only while
programs run to the end once started: a kernel that preempts them (lazy
preemption, Debian's 7.x) can output a preempted program's event after later
events of other threads, a CLOSE after the next ACCEPT of the same fd number.
So with either buffer the tracer orders events by their kernel
timestamp (``bpf_ktime_get_ns``, CLOCK_MONOTONIC, the clock of
``time.monotonic_ns``), and releases only what can no longer be overtaken:

every ring is read after ``mark`` (taken just before the reads), so an event
output before ``mark`` has been read.  An event is stamped a little before it
is output (the payload copy lies between), so releasing stops
:data:`MARGIN_NS` short of the mark; later events wait for the next read.
"""

from __future__ import annotations

from bisect import bisect_right, insort_right
from collections.abc import Callable, Iterable

from .events import SocketEvent, time_reader

#: How long an event may take from its timestamp to its output (the copy of
#: up to 16 KiB, an interrupt, a slow emulated CPU): generous, since it only
#: delays events by that much.
MARGIN_NS = 50_000_000


#: Events of one read older than the newest held one that are inserted one by
#: one (each moves the held pointers after it); more merge as two runs.
FEW_LATE = 32


class TimeOrder:
    """A holding area that releases events in timestamp order.

    What is held stays sorted.  Each read's events are sorted once on arrival
    (they come almost in order: the ring buffer is one queue, the perf
    buffer's rings are each in order, so Timsort's run merging makes it close
    to linear, in C) and appended; the events of a read older than the newest
    held one are inserted where they belong (see :meth:`add`).  Held events
    wait up to the margin (50 ms), many reads, so sorting them all on every
    read, as this did, cost a key call per held event per read: more than all
    the rest of the tracer's work per event.  The sorts are stable: equal
    timestamps keep their arrival order.
    """

    def __init__(self, margin_ns: int = MARGIN_NS) -> None:
        self.margin_ns = margin_ns
        #: held[start:] is what is held, sorted; the released head is dropped
        #: once it is the larger part (not copied away on every read).
        self._held: list[SocketEvent] = []
        self._start = 0
        #: an event's ts_ns (from its slot where the compiled decoder is)
        self._time: Callable[[SocketEvent], int] = time_reader()

    def __len__(self) -> int:
        return len(self._held) - self._start

    def add(self, events: Iterable[SocketEvent]) -> None:
        key = self._time
        batch = sorted(events, key=key)
        if not batch:
            return
        held, start = self._held, self._start
        if len(held) == start or key(batch[0]) >= key(held[-1]):
            held += batch
            return
        # Some overtook what is held: common with the BPF programs' per-CPU
        # batches, where a quiet CPU's batch brings a few events older than
        # the other CPU's last ones.  A few are each put where they belong
        # (a move of the pointers after them); more merge the two runs from
        # where the first belongs.  Sorting all that is held, as this did, cost
        # a key call per held event per read.
        late = bisect_right(batch, key(held[-1]), key=key)
        if late <= FEW_LATE:
            for event in batch[:late]:
                insort_right(held, event, lo=start, key=key)
            held += batch[late:]
            return
        at = bisect_right(held, key(batch[0]), lo=start, key=key)
        held += batch
        held[at:] = sorted(held[at:], key=key)

    def release(self, mark_ns: int | None) -> list[SocketEvent]:
        """Events stamped before ``mark_ns - margin``, oldest first; all with None."""
        held, start = self._held, self._start
        if mark_ns is None:
            out = held[start:]
            self._held, self._start = [], 0
            return out
        cut = bisect_right(held, mark_ns - self.margin_ns, lo=start, key=self._time)
        out = held[start:cut]
        if cut > len(held) // 2:
            del held[:cut]
            cut = 0
        self._start = cut
        return out

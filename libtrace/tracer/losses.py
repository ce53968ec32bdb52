"""Losses said while they happen, not only in the stats at the end.

A full event buffer drops events in the kernel (counted, never silent), and a
user who learns of it only when the trace ends has lost the whole run.
:class:`LossWatch` wraps the tracer's batches of events and, at most once per interval,
asks the tracer's kernel counters whether more were lost since it last
spoke; if so it calls ``say`` with the new and the total count.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .events import SocketEvent
    from .tracer import Tracer

#: Seconds between two looks at the counters (each reads the per-CPU counter map).
INTERVAL_S = 1.0


class LossWatch:
    """Report new losses of ``tracer`` through ``say(new, total)`` while events flow."""

    def __init__(
        self,
        tracer: Tracer,
        say: Callable[[int, int], None],
        *,
        interval_s: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tracer, self.say, self.interval_s, self.clock = tracer, say, interval_s, clock
        self.reported = 0  #: losses said so far
        self._next = clock() + interval_s

    def watch_batches(
        self, batches: Iterable[list[SocketEvent]]
    ) -> Iterator[list[SocketEvent]]:
        """``batches`` (of :meth:`Tracer.batches`), looking at the counters between them."""
        for batch in batches:
            yield batch
            if self.clock() >= self._next:
                self.look()
        self.look()

    def look(self) -> None:
        """Say the losses since the last look, if any."""
        self._next = self.clock() + self.interval_s
        lost = self.tracer.stats().lost
        if lost > self.reported:
            self.say(lost - self.reported, lost)
            self.reported = lost

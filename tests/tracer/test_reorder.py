"""Perf-buffer events in time order: per-CPU rings are read one after another."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from libtrace import Direction, EventType
from libtrace.tracer.events import with_changes
from libtrace.tracer.reorder import FEW_LATE, TimeOrder

from ..records._events import Socket


def test_a_response_read_before_its_request_is_handed_over_after_it() -> None:
    sock = Socket(pid=10, fd=3)
    request = sock.event(EventType.DATA, Direction.EGRESS, b"GET k\r\n")
    response = sock.event(EventType.DATA, Direction.INGRESS, b"$1\r\nv\r\n")
    assert request.ts_ns < response.ts_ns
    order = TimeOrder(margin_ns=10)

    order.add([response])  # CPU 1's ring was read first
    order.add([request])  # then CPU 0's

    assert order.release(response.ts_ns + 10) == [request, response]
    assert len(order) == 0


def test_events_that_could_still_be_overtaken_wait_for_the_next_read() -> None:
    sock = Socket(pid=10, fd=3)
    early, late = (sock.event(EventType.DATA, Direction.EGRESS, b"x") for _ in range(2))
    order = TimeOrder(margin_ns=1_000)
    order.add([late, early])

    assert order.release(early.ts_ns + 1_000) == [early]  # late is within the margin
    assert len(order) == 1
    assert order.release(None) == [late]  # the final drain takes all


def test_equal_timestamps_keep_their_arrival_order() -> None:
    first = Socket(pid=10, fd=3).event(EventType.DATA, Direction.EGRESS, b"a")
    second = with_changes(first, {"data": b"b"})  # same timestamp
    order = TimeOrder(margin_ns=0)
    order.add([first, second])

    assert order.release(None) == [first, second]


class _SortEveryTime:
    """The reference: hold everything, sort all that is held (stably) on every release."""

    def __init__(self, margin_ns: int) -> None:
        self.margin_ns, self.held = margin_ns, []

    def add(self, events: list) -> None:
        self.held += events

    def release(self, mark_ns: int | None) -> list:
        self.held.sort(key=lambda event: event.ts_ns)
        if mark_ns is None:
            out, self.held = self.held, []
            return out
        cut = sum(1 for event in self.held if event.ts_ns <= mark_ns - self.margin_ns)
        out, self.held = self.held[:cut], self.held[cut:]
        return out


# Reads of up to 40: more than FEW_LATE late events take the merge of two runs.
@given(st.lists(st.tuples(st.lists(st.integers(0, 50), max_size=40), st.integers(0, 60)),
                max_size=12))  # fmt: skip
def test_releases_equal_sorting_everything_held_on_every_read(
    reads: list[tuple[list[int], int]],
) -> None:
    """Reads of events (their timestamps) and the mark after each: what each
    release hands over is exactly what stably sorting all held events would."""
    base = Socket(pid=10, fd=3).event(EventType.DATA, Direction.EGRESS, b"")
    order, reference = TimeOrder(margin_ns=5), _SortEveryTime(margin_ns=5)
    for number, (stamps, mark) in enumerate(reads):
        batch = [with_changes(base, {"ts_ns": ts, "data": b"%d.%d" % (number, i)})
                 for i, ts in enumerate(stamps)]  # fmt: skip
        order.add(batch)
        reference.add(batch)
        assert order.release(mark) == reference.release(mark)
        assert len(order) == len(reference.held)
    assert order.release(None) == reference.release(None)


def test_a_few_late_events_and_many_both_land_where_they_belong() -> None:
    """A quiet CPU's batch brings a few events older than the newest held (each
    inserted), a large one many (two runs merged): both paths, against the reference."""
    base = Socket(pid=10, fd=3).event(EventType.DATA, Direction.EGRESS, b"")
    order, reference = TimeOrder(margin_ns=0), _SortEveryTime(margin_ns=0)
    reads = [list(range(0, 400, 2)), [5, 7, 301], [*range(1, 399, 4), 500, 501]]
    assert 3 <= FEW_LATE < len(reads[2]) - 2
    for number, stamps in enumerate(reads):
        batch = [with_changes(base, {"ts_ns": ts, "data": b"%d.%d" % (number, i)})
                 for i, ts in enumerate(stamps)]  # fmt: skip
        order.add(batch)
        reference.add(batch)
    assert order.release(None) == reference.release(None)

"""Perf-buffer events in time order: per-CPU rings are read one after another."""

from __future__ import annotations

from libtrace import Direction, EventType
from libtrace.tracer.events import with_changes
from libtrace.tracer.reorder import TimeOrder

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

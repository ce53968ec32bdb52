"""What each service's traffic must make its server count, and the check (both backends)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from libtrace.services import Running

#: What the traffic script must add, at least, to each server's own counters.
EXPECTED_COUNTS: dict[str, dict[str, int]] = {
    "redis": {"rpush": 50, "hgetall": 2, "hello": 2, "set": 2, "get": 4},
    "mysql": {"Com_insert": 2, "Com_create_table": 2, "Com_stmt_prepare": 2,
              "Com_stmt_execute": 1, "Com_select": 5},
    "kafka": {"orders/0 records": 3},
    "mqtt": {"PUBLISH": 6, "SUBSCRIBE": 2, "PUBREL": 2, "PINGREQ": 2, "UNSUBSCRIBE": 2},
    "dns": {"A": 4, "AAAA": 2},
    "http1": {"200": 4, "404": 2, "405": 2},
    "http2": {"HEADERS": 104},
    "dubbo": {"org.demo.GreetingService.sayHello": 3, "missing.Service.sayHello": 1,
              "org.demo.GreetingService.fail": 1, "org.demo.GreetingService.notify": 1},
}  # fmt: skip


def _added(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {key: value - before.get(key, 0) for key, value in after.items()}


#: Seconds a server's counters may lag behind its replies (nginx logs after it has answered).
COUNTER_LAG_S = 5.0


def assert_counted(
    running: Running, before: Mapping[str, int], expected: Mapping[str, int]
) -> None:
    """Assert that the server counted at least ``expected`` since ``before``."""
    deadline = time.monotonic() + COUNTER_LAG_S
    while True:
        counted = _added(before, running.server_stats())
        missing = {
            key: (counted.get(key, 0), want)
            for key, want in expected.items()
            if counted.get(key, 0) < want
        }
        if not missing:
            return
        assert time.monotonic() < deadline, f"counted (got, wanted): {missing}; all: {counted}"
        time.sleep(0.05)

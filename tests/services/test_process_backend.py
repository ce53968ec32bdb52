"""Every service as a local process: it starts, answers, takes its traffic and counts it."""

from __future__ import annotations

import time
from collections.abc import Mapping

import pytest

from libtrace.services import SERVICES, Running, start

from .conftest import endpoint, needs_programs

pytestmark = pytest.mark.root  # port 53, a mount namespace for glibc, servers as root

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


def added(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    return {key: value - before.get(key, 0) for key, value in after.items()}


#: Seconds a server's counters may lag behind its replies (nginx logs after it has answered).
COUNTER_LAG_S = 5.0


def assert_counted(
    running: Running, before: Mapping[str, int], expected: Mapping[str, int]
) -> None:
    """Assert that the server counted at least ``expected`` since ``before``."""
    deadline = time.monotonic() + COUNTER_LAG_S
    while True:
        counted = added(before, running.server_stats())
        missing = {
            key: (counted.get(key, 0), want)
            for key, want in expected.items()
            if counted.get(key, 0) < want
        }
        if not missing:
            return
        assert time.monotonic() < deadline, f"counted (got, wanted): {missing}; all: {counted}"
        time.sleep(0.05)


def test_every_service_has_expected_counts() -> None:
    assert set(EXPECTED_COUNTS) == set(SERVICES)


@pytest.mark.parametrize("name", [pytest.param(n, marks=needs_programs(n)) for n in SERVICES])
def test_service_starts_takes_its_traffic_and_counts_it(name: str) -> None:
    host, port = endpoint(SERVICES[name])
    begun = time.monotonic()
    with start(name, "process", host=host, port=port) as running:
        started_s = time.monotonic() - begun
        pids = running.pids()
        assert pids and running.container is None
        before = running.server_stats()
        running.traffic()
        assert_counted(running, before, EXPECTED_COUNTS[name])
    assert not [pid for pid in pids if _alive(pid)], "server processes outlived the block"
    print(f"{name}: ready in {started_s:.2f} s")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return False

"""Every service as a local process: it starts, answers, takes its traffic and counts it."""

from __future__ import annotations

import stat
import time

import pytest

from libtrace.output import PRIVATE_MODE
from libtrace.services import SERVICES, start

from ._expect import EXPECTED_COUNTS, assert_counted
from .conftest import endpoint, needs_programs

pytestmark = pytest.mark.root  # port 53, a mount namespace for glibc, servers as root


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


@needs_programs("http2")
def test_the_server_log_is_0600() -> None:
    """nghttpd --verbose logs every header it receives (credentials too)."""
    host, port = endpoint(SERVICES["http2"])
    with start("http2", "process", host=host, port=port) as running:
        log = running.workdir / "server.log"
        assert stat.S_IMODE(log.stat().st_mode) == PRIVATE_MODE


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return False

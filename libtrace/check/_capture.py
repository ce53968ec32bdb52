"""The wire side of the check: a loopback capture of the service's traffic
(:mod:`libtrace.services.tcpdump`, provably live from first to last packet),
and which live records fall inside it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..pcap import read_packets
from ..services.tcpdump import Capture
from ..services.tcpdump import capture as tcpdump_capture

#: How far the tracer's clock (monotonic, read once) and the pcap's (wall) may disagree.
CLOCK_SLACK_NS = 5_000_000


@contextlib.contextmanager
def capture(path: Path, host: str, port: int) -> Iterator[Capture]:
    """tcpdump on ``lo`` for ``host:port`` (see :func:`libtrace.services.tcpdump.capture`)."""
    with tcpdump_capture(path, f"host {host} and port {port}") as running:
        yield running


def pcap_window_ns(path: Path) -> tuple[int, int]:
    """(first, last) packet time of a capture, wall clock."""
    stamps = [packet.ts_ns for packet in read_packets(str(path))]
    return min(stamps), max(stamps)


def during_capture(records: list[Mapping[str, Any]], pcap: Path) -> list[Mapping[str, Any]]:
    """The live records whose request falls inside the capture (readiness probes that reached a
    server before tcpdump started do not)."""
    first, last = pcap_window_ns(pcap)
    # Record times are CLOCK_MONOTONIC, pcap times wall clock.
    to_wall = time.time_ns() - time.monotonic_ns()
    first, last = first - CLOCK_SLACK_NS, last + CLOCK_SLACK_NS
    return [r for r in records if first <= r["ts_ns"] + to_wall <= last]

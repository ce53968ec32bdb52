"""Parse benchmark: protocol parser throughput, in MB/s of payload, per protocol.

Theory of operation: every golden capture in ``fixtures/<protocol>/*.pcap``
goes once through the project's own offline path (:func:`libtrace.pcap.read_packets`
into a :class:`~libtrace.pcap.PcapAnalyzer`, as ``libtrace pcap`` does: the pcap
reader, TCP reassembly, inference) with each class of
:data:`libtrace.parsers.PARSERS` swapped, for that pass only, for a subclass
that writes down every ``feed``/``feed_gap`` call it gets.  That gives, per
connection, exactly the bytes, gaps, ends of stream and timestamps the
parser saw, per direction and in the order it saw them, plus the records
the whole path produced.

The timed part replays those calls with no I/O: per pass, one fresh parser
and :class:`~libtrace.parsers.Pairer` per connection, every call fed in
order, ``parser.events()`` drained into the pairer after each call (as
:mod:`libtrace.pcap` does), and the pairer flushed at the end.  Passes
repeat until they have taken at least ``--seconds`` (default 1) of CPU.
``mb_per_s`` is payload bytes fed (10^6 bytes per MB; gaps and ends of
stream carry none) over the CPU time of the passes (this process's, which
is single-threaded: other load on the machine steals wall time, not CPU
time; ``wall_mb_per_s`` is the same over wall time); ``records_per_s``
counts the records the pairer emitted, per CPU second.  Each pass must emit as many records
as the offline path did for the same connections, or the run fails: that
checks the replay is faithful.  Reading the pcap, reassembly, inference and
JSON output are not timed here (``pcap_vs_tshark.py`` times the whole path).

Protocols are discovered at run time: those of :data:`PARSERS` that some
fixture capture has a connection of (grouped by the parser the offline path
chose, whatever directory the capture sits in).

Run from the repository root::

    python3 benchmarks/parse.py [--seconds S] [--protocol NAME ...] [--quick]

It prints one JSON object on stdout (progress goes to stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from benchmarks._common import emit, exit_on_sigterm, log
from libtrace.parsers import PARSERS, Direction, Pairer, StreamParser
from libtrace.pcap import PcapAnalyzer, read_packets

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
#: CPU time of parsing per protocol, at least (whole passes: the last one may overrun).
DEFAULT_SECONDS = 1.0
#: --quick: a smoke run for the tests.
QUICK_SECONDS = 0.02
MB = 1_000_000


@dataclass(slots=True)
class Connection:
    """What one parser was fed by the offline path, call by call."""

    protocol: str
    transport: str
    mid_stream: bool
    #: (direction, data, gap size, ts_ns): data for feed (b"" ends the direction),
    #: or a gap size > 0 for feed_gap
    calls: list[tuple[Direction, bytes, int, int]] = field(default_factory=list)
    #: the capture's last timestamp, which the offline path flushes the pairer with
    end_ts: int = 0

    @property
    def payload_bytes(self) -> int:
        return sum(len(data) for _, data, _, _ in self.calls)


def _recording(cls: type[StreamParser], sink: list[Connection]) -> type[StreamParser]:
    """A subclass of ``cls`` that appends a :class:`Connection` to ``sink`` and logs into it."""

    def __init__(self: Any, *, transport: Any = "tcp", mid_stream: bool = False) -> None:
        cls.__init__(self, transport=transport, mid_stream=mid_stream)
        self._bench_connection = Connection(cls.protocol, transport, mid_stream)
        sink.append(self._bench_connection)

    def feed(self: Any, direction: Direction | str, data: bytes, ts_ns: int) -> None:
        self._bench_connection.calls.append((Direction(direction), bytes(data), 0, ts_ns))
        cls.feed(self, direction, data, ts_ns)

    def feed_gap(self: Any, direction: Direction | str, size: int, ts_ns: int) -> None:
        self._bench_connection.calls.append((Direction(direction), b"", size, ts_ns))
        cls.feed_gap(self, direction, size, ts_ns)

    return type(f"Recording{cls.__name__}", (cls,),
                {"__init__": __init__, "feed": feed, "feed_gap": feed_gap})


@contextmanager
def recording_parsers(sink: list[Connection]) -> Iterator[None]:
    """Swap every registered parser for its recording subclass, for the ``with`` block."""
    patched = {name: _recording(cls, sink) for name, cls in PARSERS.items()}
    with mock.patch.dict(PARSERS, patched):
        yield


def fixture_pcaps(root: Path = FIXTURES) -> list[Path]:
    """The golden captures: ``fixtures/<protocol>/*.pcap`` (and ``.pcapng``)."""
    return sorted(p for p in root.glob("*/*") if p.suffix in (".pcap", ".pcapng"))


def extract(pcaps: list[Path]) -> tuple[dict[str, list[Connection]], Counter[str]]:
    """Run the offline path over ``pcaps`` once, recording what each parser was fed.

    Returns:
        the connections per protocol, and the records the path produced per protocol.
    """
    connections: list[Connection] = []
    records: Counter[str] = Counter()
    with recording_parsers(connections):
        for pcap in pcaps:
            first = len(connections)
            analyzer = PcapAnalyzer()
            for packet in read_packets(str(pcap)):
                records.update(record.protocol for record in analyzer.packet(packet))
            records.update(record.protocol for record in analyzer.finish())
            for connection in connections[first:]:
                connection.end_ts = analyzer.last_ts
    by_protocol: dict[str, list[Connection]] = {}
    for connection in connections:
        by_protocol.setdefault(connection.protocol, []).append(connection)
    return by_protocol, records


def replay(cls: type[StreamParser], connections: list[Connection]) -> int:
    """One pass: feed every connection to a fresh parser and pairer; the records emitted."""
    emitted = 0
    for connection in connections:
        parser = cls(transport=connection.transport,  # type: ignore[arg-type]
                     mid_stream=connection.mid_stream)
        pairer = Pairer()
        feed, feed_gap, events, add = parser.feed, parser.feed_gap, parser.events, pairer.add
        for direction, data, gap, ts_ns in connection.calls:
            if gap:
                feed_gap(direction, gap, ts_ns)
            else:
                feed(direction, data, ts_ns)
            for event in events():
                emitted += len(add(event))
        emitted += len(pairer.flush(connection.end_ts))
    return emitted


def bench_protocol(cls: type[StreamParser], connections: list[Connection],
                   expected_records: int, min_seconds: float) -> dict[str, Any]:
    """Replay ``connections`` until ``min_seconds`` have gone; the protocol's figures."""
    payload = sum(c.payload_bytes for c in connections)
    replay(cls, connections)  # warm-up: imports, caches, first-use allocations
    passes = records = 0
    cpu, wall = time.process_time(), time.perf_counter()
    while True:
        emitted = replay(cls, connections)
        if emitted != expected_records:
            raise RuntimeError(f"{cls.protocol}: a replay pass emitted {emitted} records, the "
                               f"offline path {expected_records}: the replay is not faithful")
        passes += 1
        records += emitted
        seconds = time.process_time() - cpu
        if seconds >= min_seconds:
            break
    wall = time.perf_counter() - wall
    return {
        "mb_per_s": round(payload * passes / seconds / MB, 3),
        "records_per_s": round(records / seconds, 1),
        "payload_bytes": payload,
        "records": expected_records,
        "connections": len(connections),
        "passes": passes,
        "cpu_s": round(seconds, 3),
        "wall_s": round(wall, 3),
        "wall_mb_per_s": round(payload * passes / wall / MB, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 benchmarks/parse.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help=f"parse time per protocol, at least (default {DEFAULT_SECONDS:g})",
    )
    parser.add_argument(
        "--protocol",
        action="append",
        default=[],
        metavar="NAME",
        help="only this protocol (repeatable; default: every one with a fixture)",
    )
    parser.add_argument("--fixtures", type=Path, default=FIXTURES,
                        help="the directory of <protocol>/*.pcap captures")
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run (for tests)")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if args.quick:
        args.seconds = QUICK_SECONDS
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    unknown = sorted(set(args.protocol) - set(PARSERS))
    if unknown:
        parser.error(f"no parser for {', '.join(unknown)} (have {', '.join(sorted(PARSERS))})")

    started, load = time.monotonic(), round(os.getloadavg()[0], 2)
    pcaps = fixture_pcaps(args.fixtures)
    if not pcaps:
        parser.error(f"no captures in {args.fixtures}/<protocol>/")
    by_protocol, records = extract(pcaps)
    wanted = args.protocol or sorted(PARSERS)
    results: dict[str, dict[str, Any]] = {}
    for name in wanted:
        if name not in by_protocol:
            log(f"{name}: no fixture connection, skipped")
            continue
        result = bench_protocol(PARSERS[name], by_protocol[name], records[name],
                                args.seconds)
        results[name] = result
        log(f"{name}: {result['mb_per_s']} MB/s, {result['records_per_s']} records/s "
            f"({result['payload_bytes']} bytes x {result['passes']} passes)")
    emit(
        {
            "benchmark": "parse",
            "protocols": results,
            "without_fixture": sorted(set(wanted) - set(by_protocol)),
            "fixtures": [str(p.relative_to(args.fixtures)) for p in pcaps],
            "min_seconds": args.seconds,
            "cpus": os.cpu_count(),
            "loadavg_1m": load,
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

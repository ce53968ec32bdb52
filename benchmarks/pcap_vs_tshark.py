"""pcap-vs-tshark benchmark: ``libtrace pcap FILE --json`` against ``tshark -r FILE -T json``.

Theory of operation: one large capture (``--size-mb``, default 100 MB; in a
temporary directory, deleted at the end) is built with dpkt by repeating the
traffic of the golden captures in ``fixtures/<protocol>/*.pcap`` (those of a
protocol :data:`libtrace.parsers.PARSERS` has, found at run time) as many
times as it takes.  Every copy of every fixture gets its own addresses
(127.0.0.0/8, or fd00::/8 for IPv6; the fixture's distinct addresses stay
distinct), so that its flows are new flows; ports stay, so inference sees
what it saw in the fixture.  All TCP sequence and acknowledgement numbers
(and SACK edges) of a copy are shifted by one offset per copy, modulo 2^32,
so both directions of each flow copy stay consistent.  IP, TCP and UDP
checksums are recomputed.  Fixtures follow each other in time, one second
apart, and copies follow each other likewise.

Then both tools read the same file, alternating (round 1: libtrace then
tshark, round 2: tshark then libtrace), ``--rounds`` rounds (default 2)
while the time budget (``--budget``, default 300 s, building included)
allows another.  libtrace runs as ``python -m libtrace.cli pcap FILE
--json`` with stdout to a file in the temporary directory (the records are
then counted: there must be copies × what libtrace finds in each fixture,
per protocol); tshark as ``tshark -r FILE -T json`` with stdout to
/dev/null.  Wall time and CPU time (user + system of the child) are taken
for each run.  ``ratio_median`` is the median over rounds of libtrace's
wall time over tshark's: below 1.0 libtrace is the faster.

Run from the repository root::

    python3 benchmarks/pcap_vs_tshark.py [--size-mb N] [--rounds R] [--budget S] [--profile]

It prints one JSON object on stdout (progress goes to stderr), and exits 1
if libtrace did not print the expected records.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import cProfile
import io
import ipaddress
import json
import math
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import dpkt  # type: ignore[import-untyped]

from benchmarks._common import emit, exit_on_sigterm, log
from libtrace.parsers import PARSERS
from libtrace.pcap import analyze

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
MB = 1_000_000
DEFAULT_SIZE_MB = 100.0
DEFAULT_ROUNDS = 2
#: Seconds the whole run may take, building the capture included; a round
#: starts only if the previous one says it fits.
DEFAULT_BUDGET_S = 300.0
#: --quick: a smoke run for the tests.
QUICK_SIZE_MB, QUICK_ROUNDS = 0.5, 1
#: Between two fixtures, and two copies, in capture time.
GAP_US = 1_000_000
#: Per-copy shift of the TCP sequence numbers (an odd constant: copies differ).
SEQ_STRIDE = 0x9E3779B1
TCP_OPT_SACK = 5
TARGET = "< 1.0 (faster than tshark)"
#: Lines of the cProfile report kept with --profile.
PROFILE_TOP = 15


@dataclass(slots=True)
class Fixture:
    """One golden capture, decoded once, ready to be written again with new addresses."""

    path: Path
    #: (µs since the fixture's first packet, the Ethernet frame, its IP packet or None)
    packets: list[tuple[int, Any, Any]] = field(default_factory=list)
    #: the fixture's distinct IP addresses (packed), in order of appearance
    addresses: list[bytes] = field(default_factory=list)
    #: the records libtrace prints for the fixture alone, per protocol
    records: Counter[str] = field(default_factory=Counter)
    #: bytes one copy adds to the capture: record headers and frames
    size: int = 0
    snaplen: int = 0

    @property
    def duration_us(self) -> int:
        return self.packets[-1][0] if self.packets else 0


def fixture_pcaps(root: Path = FIXTURES) -> list[Path]:
    """The golden classic captures of every protocol that has a parser, found at run
    time (a pcapng may hold interfaces of several link types; the one big capture
    built from these is a classic pcap of one)."""
    return sorted(p for p in root.glob("*/*.pcap") if p.parent.name in PARSERS)


def _as_ethernet(linktype: int, buf: bytes) -> Any:
    """The frame as Ethernet: as captured, or its IP packet wrapped in a blank header."""
    if linktype == dpkt.pcap.DLT_EN10MB:
        return dpkt.ethernet.Ethernet(buf)
    from libtrace.pcap._reader import _link_decoder  # the reader's own link layers

    decode = _link_decoder(linktype)
    if decode is None:
        raise ValueError(f"link type {linktype} is not supported")
    ip = decode(buf)
    kind = dpkt.ethernet.ETH_TYPE_IP6 if isinstance(ip, dpkt.ip6.IP6) else dpkt.ethernet.ETH_TYPE_IP
    return dpkt.ethernet.Ethernet(src=b"\x02" + bytes(5), dst=b"\x02" + bytes(4) + b"\x01",
                                  type=kind, data=ip)


def load_fixture(path: Path) -> Fixture:
    fixture = Fixture(path)
    seen: dict[bytes, None] = {}
    with open(path, "rb") as raw:
        reader = dpkt.pcap.UniversalReader(raw)
        linktype, fixture.snaplen = reader.datalink(), getattr(reader, "snaplen", 65535)
        first: int | None = None
        for ts, buf in reader:
            ts_us = round(float(ts) * 1e6)  # a nanosecond capture gives a Decimal
            first = ts_us if first is None else first
            frame = _as_ethernet(linktype, buf)
            ip = frame.data if isinstance(frame.data, dpkt.ip.IP | dpkt.ip6.IP6) else None
            if ip is not None:
                seen.setdefault(ip.src)
                seen.setdefault(ip.dst)
            fixture.packets.append((ts_us - first, frame, ip))
            fixture.size += 16 + len(bytes(frame))
    fixture.addresses = list(seen)
    fixture.records = Counter(record.protocol for record in analyze(str(path)))
    return fixture


def copy_address(original: bytes, index: int, unit: int, bits: int) -> bytes:
    """The address ``original`` (the fixture's ``index``-th) gets in copy ``unit``."""
    if len(original) == 4:
        value = (127 << 24) | (unit << bits) | (index + 1)
        if unit >= 1 << (24 - bits):
            raise ValueError("too many copies for 127.0.0.0/8: ask for a smaller --size-mb")
        return value.to_bytes(4, "big")
    return (ipaddress.IPv6Address("fd00::") + ((unit << 64) | (index + 1))).packed


def _shift_sack(opts: bytes, shift: int) -> bytes:
    """TCP options with every SACK edge moved by ``shift`` (mod 2^32)."""
    out, rest = bytearray(), opts
    for kind, data in dpkt.tcp.parse_opts(opts):
        if kind in (dpkt.tcp.TCP_OPT_EOL, dpkt.tcp.TCP_OPT_NOP):
            out.append(kind)
            rest = rest[1:]
            continue
        if kind == TCP_OPT_SACK and len(data) % 4 == 0:
            edges = [(int.from_bytes(data[i:i + 4], "big") + shift) % (1 << 32)
                     for i in range(0, len(data), 4)]
            data = b"".join(edge.to_bytes(4, "big") for edge in edges)
        out += bytes((kind, len(data) + 2)) + data
        rest = rest[len(data) + 2:]
    return bytes(out) + rest  # padding after an EOL


def write_capture(fixtures: list[Fixture], copies: int, path: Path) -> int:
    """Write ``copies`` copies of every fixture into ``path``; the packets written."""
    bits = max(len(f.addresses) for f in fixtures).bit_length()
    offsets, at = [], 0
    for fixture in fixtures:
        offsets.append(at)
        at += fixture.duration_us + GAP_US
    span, base = at, min(f.path.stat().st_mtime_ns // 1000 for f in fixtures)
    packets = 0
    with open(path, "wb", buffering=1 << 20) as out:
        writer = dpkt.pcap.Writer(out, snaplen=max(f.snaplen for f in fixtures),
                                  linktype=dpkt.pcap.DLT_EN10MB)
        for copy in range(copies):
            shift = copy * SEQ_STRIDE % (1 << 32)
            for number, (fixture, offset) in enumerate(zip(fixtures, offsets, strict=True)):
                unit = copy * len(fixtures) + number
                new = {a: copy_address(a, i, unit, bits) for i, a in enumerate(fixture.addresses)}
                start = base + copy * span + offset
                for rel_us, frame, ip in fixture.packets:
                    if ip is not None:
                        _rewrite(ip, new, shift)
                    writer.writepkt(frame, (start + rel_us) / 1e6)
                    packets += 1
    return packets


def _rewrite(ip: Any, new: dict[bytes, bytes], shift: int) -> None:
    """Give one IP packet its copy's addresses and sequence numbers (in place)."""
    original = getattr(ip, "_bench_original", None)
    l4 = ip.data
    if original is None:  # first copy: remember the fixture's own values
        tcp = isinstance(l4, dpkt.tcp.TCP)
        original = ip._bench_original = (ip.src, ip.dst, l4.seq if tcp else 0,
                                         l4.ack if tcp else 0, bytes(l4.opts) if tcp else b"")
    src, dst, seq, ack, opts = original
    ip.src, ip.dst = new[src], new[dst]
    if isinstance(ip, dpkt.ip.IP):
        ip.sum = 0
    if isinstance(l4, dpkt.tcp.TCP):
        l4.seq = (seq + shift) % (1 << 32)
        if l4.flags & dpkt.tcp.TH_ACK:
            l4.ack = (ack + shift) % (1 << 32)
        if opts:
            l4.opts = _shift_sack(opts, shift)
        l4.sum = 0
    elif isinstance(l4, dpkt.udp.UDP):
        l4.sum = 0


def _env() -> dict[str, str]:
    """This environment, with the repository first on the path (its libtrace is measured)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path}


def timed(argv: list[str], stdout: Any, timeout: float) -> tuple[float, float]:
    """Run ``argv`` to completion: (wall seconds, CPU seconds of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, timeout=timeout,
                          check=False, cwd=ROOT, env=_env())
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited with {done.returncode}: "
                           f"{done.stderr.decode(errors='replace').strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def count_records(path: Path) -> Counter[str]:
    with open(path, "rb") as lines:
        return Counter(json.loads(line)["protocol"] for line in lines if line.strip())


def profile(pcap: Path) -> list[dict[str, Any]]:
    """libtrace's offline path under cProfile: the functions with the most own time."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in analyze(str(pcap)):
        pass
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(PROFILE_TOP)
    log(text.getvalue())
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    top = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:PROFILE_TOP]
    return [{"function": f"{Path(file).name}:{line}({name})", "calls": calls,
             "tottime_s": round(tottime, 3), "cumtime_s": round(cumtime, 3)}
            for (file, line, name), (_, calls, tottime, cumtime, _) in top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 benchmarks/pcap_vs_tshark.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--size-mb", type=float, default=DEFAULT_SIZE_MB,
                        help=f"size of the capture, at least (default {DEFAULT_SIZE_MB:g})")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help=f"runs of each tool, alternating (default {DEFAULT_ROUNDS})")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S,
                        help="start no new round past this many seconds "
                        f"(default {DEFAULT_BUDGET_S:g}); one run may take this long at most")
    parser.add_argument("--fixtures", type=Path, default=FIXTURES,
                        help="the directory of <protocol>/*.pcap captures")
    parser.add_argument("--profile", action="store_true",
                        help="then profile libtrace on the same file with cProfile (the "
                        "report goes to stderr, the top functions into the JSON)")
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run (for tests)")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if args.quick:
        args.size_mb, args.rounds = QUICK_SIZE_MB, QUICK_ROUNDS
    if args.size_mb <= 0 or args.rounds < 1 or args.budget <= 0:
        parser.error("--size-mb, --rounds and --budget must be positive")
    tshark = shutil.which("tshark")
    if tshark is None:
        parser.error("needs tshark (scripts/install-deps.sh installs it)")
    pcaps = fixture_pcaps(args.fixtures)
    if not pcaps:
        parser.error(f"no captures in {args.fixtures}/<protocol>/ of a protocol with a parser")

    started, load = time.monotonic(), round(os.getloadavg()[0], 2)
    fixtures = [load_fixture(path) for path in pcaps]
    per_copy = sum(f.size for f in fixtures)
    copies = max(1, math.ceil((args.size_mb * MB - 24) / per_copy))
    expected: Counter[str] = Counter()
    for fixture in fixtures:
        expected.update({name: n * copies for name, n in fixture.records.items()})

    with tempfile.TemporaryDirectory(prefix="libtrace-pcap-bench-") as tmp:
        pcap, output = Path(tmp) / "big.pcap", Path(tmp) / "libtrace.jsonl"
        packets = write_capture(fixtures, copies, pcap)
        size = pcap.stat().st_size
        build_s = time.monotonic() - started
        log(f"built {size / MB:.1f} MB, {packets} packets ({copies} copies of "
            f"{len(fixtures)} fixtures) in {build_s:.1f} s")
        commands = {
            "libtrace": [sys.executable, "-m", "libtrace.cli", "pcap", str(pcap), "--json"],
            "tshark": [tshark, "-r", str(pcap), "-T", "json"],
        }
        times: dict[str, list[float]] = {"libtrace": [], "tshark": []}
        cpu: dict[str, list[float]] = {"libtrace": [], "tshark": []}
        found: Counter[str] = Counter()
        stop_reason = f"all {args.rounds} round(s) done"
        for round_no in range(args.rounds):
            round_started = time.monotonic()
            order = ("libtrace", "tshark") if round_no % 2 == 0 else ("tshark", "libtrace")
            for tool in order:
                with open(output if tool == "libtrace" else os.devnull, "wb") as sink:
                    wall, used = timed(commands[tool], sink, args.budget)
                times[tool].append(round(wall, 3))
                cpu[tool].append(round(used, 3))
                log(f"round {round_no + 1}: {tool} {wall:.2f} s ({used:.2f} s CPU)")
                if tool == "libtrace":
                    found = count_records(output)
                    if found != expected:
                        log(f"libtrace printed {dict(found)}, expected {dict(expected)}")
            elapsed, round_s = time.monotonic() - started, time.monotonic() - round_started
            if round_no + 1 < args.rounds and elapsed + round_s > args.budget:
                stop_reason = (f"{round_no + 1} of {args.rounds} rounds: another "
                               f"({round_s:.0f} s) would pass the {args.budget:g} s budget")
                log(stop_reason)
                break
        hotspots = profile(pcap) if args.profile else None

    ratios = [lt / ts for lt, ts in zip(times["libtrace"], times["tshark"], strict=True)]
    best_libtrace = min(times["libtrace"])
    result: dict[str, Any] = {
        "benchmark": "pcap_vs_tshark",
        "pcap_mb": round(size / MB, 1),
        "packets": packets,
        "copies": copies,
        "fixtures": [str(p.relative_to(args.fixtures)) for p in pcaps],
        "libtrace_s": times["libtrace"],
        "tshark_s": times["tshark"],
        "libtrace_cpu_s": cpu["libtrace"],
        "tshark_cpu_s": cpu["tshark"],
        "ratio_median": round(statistics.median(ratios), 3),
        "target": TARGET,
        "libtrace_mb_per_s": round(size / MB / best_libtrace, 2),
        "libtrace_packets_per_s": round(packets / best_libtrace),
        "tshark_mb_per_s": round(size / MB / min(times["tshark"]), 2),
        "records": sum(found.values()),
        "records_expected": sum(expected.values()),
        "records_ok": found == expected,
        "records_by_protocol": dict(sorted(found.items())),
        "rounds": stop_reason,
        "build_s": round(build_s, 1),
        "cpus": os.cpu_count(),
        "loadavg_1m": load,
        "seconds": round(time.monotonic() - started, 1),
    }
    if hotspots is not None:
        result["hotspots"] = hotspots
    emit(result)
    return 0 if result["records_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Go inspector benchmark: inspection time per binary and peak memory.

Theory of operation: every binary is inspected once untimed (imports,
page cache) and then ``--repeats`` times with ``inspect_binary`` (the whole
of ``libtrace go-inspect``: build information, symbols, disassembly of
``crypto/tls.(*Conn).Read/Write``, DWARF or table offsets); ``median_ms`` is
the median wall time of those.  ``ms_per_10mb`` scales it to a 10 MB binary
(the target is ≤ 300 ms).  Memory is measured in a fresh child process per
binary: ``peak_rss_mb`` is its peak resident set after one inspection and
``inspect_rss_mb`` what the inspection added over the imports alone.  The
binary is memory-mapped, so its pages count only as far as they are read.

The binaries are the ones given on the command line, else every cached build
of the test programs (``tests/golang``; run its tests once to build them).

Run from the repository root::

    python3 benchmarks/go_inspect.py [BINARY ...] [--repeats N] [--quick]

It prints one JSON object on stdout (progress goes to stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import json
import os
import statistics
import subprocess
import time
from typing import Any

from benchmarks._common import emit, exit_on_sigterm, log
from libtrace.host.cache import MARKER
from libtrace.host.go_toolchains import default_cache_dir
from libtrace.tracer.golang import inspect_binary

ROOT = Path(__file__).resolve().parent.parent
#: Timed inspections per binary (after one untimed warm-up).
DEFAULT_REPEATS = 10
#: --quick: a smoke run for the tests.
QUICK_REPEATS = 2
#: The issue's target for a 10 MB binary.
TARGET_MS_PER_10MB = 300.0
MB = 1_000_000

# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across
# fork and exec, while VmHWM belongs to the child's own address space.
_CHILD = """
import json, sys
import capstone
from libtrace.tracer.golang import inspect_binary
def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
before = hwm()
inspect_binary(sys.argv[1])
print(json.dumps([before, hwm()]))
"""


def cached_builds() -> list[Path]:
    """Every finished build of the test programs in the toolchain cache."""
    builds = default_cache_dir() / "builds"
    if not builds.is_dir():
        return []
    return sorted(
        entry / entry.name.split("-go")[0]
        for entry in builds.iterdir()
        if (entry / MARKER).exists()
    )


def measure(binary: Path, repeats: int) -> dict[str, Any]:
    result = inspect_binary(binary)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        inspect_binary(binary)
        times.append((time.perf_counter() - start) * 1000)
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(binary)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    base_rss, peak_rss = json.loads(child.stdout)
    size = binary.stat().st_size
    median = statistics.median(times)
    return {
        "binary": str(binary),
        "go_version": result.go_version,
        "stripped": result.stripped,
        "pie": result.pie,
        "offsets_source": result.offsets_source,
        "size_mb": round(size / MB, 2),
        "median_ms": round(median, 2),
        "max_ms": round(max(times), 2),
        "ms_per_10mb": round(median * 10 * MB / size, 2),
        "peak_rss_mb": round(peak_rss, 1),
        "inspect_rss_mb": round(peak_rss - base_rss, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binaries", nargs="*", type=Path, metavar="BINARY")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--quick", action="store_true", help="a smoke run: one binary, 2 repeats")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    binaries = args.binaries or cached_builds()
    repeats = args.repeats
    if args.quick:
        binaries, repeats = binaries[:1], QUICK_REPEATS
    if not binaries:
        log("no binaries: name some, or run `pytest tests/golang` once to build the test programs")
        return 2
    started = time.monotonic()
    rows = []
    for binary in binaries:
        log(f"inspecting {binary}")
        rows.append(measure(binary, repeats))
    worst = max(row["ms_per_10mb"] for row in rows)
    emit(
        {
            "benchmark": "go_inspect",
            "repeats": repeats,
            "binaries": rows,
            "worst_ms_per_10mb": worst,
            "target_ms_per_10mb": TARGET_MS_PER_10MB,
            "meets_target": worst <= TARGET_MS_PER_10MB,
            "max_peak_rss_mb": max(row["peak_rss_mb"] for row in rows),
            "cpus": os.cpu_count(),
            "loadavg_1m": round(os.getloadavg()[0], 2),
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

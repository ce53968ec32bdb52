"""Check-cost benchmark: seconds per scenario of ``libtrace check``, so the matrix can budget it.

Theory of operation: each scenario runs through :func:`libtrace.check.run_check`
as the CLI runs it (server start, tracer attach, tcpdump, traffic, drain,
pcap parse, comparison), ``--rounds`` times per backend; the figure is the
median wall time, with its parts: the time to a ready server (``start_s``,
from the service's start to the tracer attaching) and the rest.  The Docker
backend runs too when a daemon answers (``--backend`` picks); its first
round may include an image build, so the median is the figure to read.

Run from the repository root::

    python3 -m benchmarks.check_cost [SCENARIO ...] [--backend process|docker|both]
                                     [--rounds N] [--quick]

It prints one JSON object on stdout (progress goes to stderr).  Needs root.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

from libtrace.check import run_check
from libtrace.services import SERVICES, ServiceError

from ._common import emit, exit_on_sigterm, log

#: Rounds per scenario and backend: the median of three resists one slow start.
DEFAULT_ROUNDS = 3
#: --quick: one round of one cheap scenario, for the tests.
QUICK_SCENARIOS, QUICK_ROUNDS = ("dubbo",), 1


def one_round(scenario: str, backend: str) -> dict[str, Any]:
    """Seconds of one check, and when its server was ready."""
    began = time.monotonic()
    marks: dict[str, float] = {}

    def progress(step: str) -> None:
        if step.startswith("attaching"):
            marks["ready"] = time.monotonic() - began

    result = run_check(scenario, backend, progress=progress)
    return {"seconds": result.seconds, "start_s": marks.get("ready", 0.0), "ok": result.ok,
            "records": result.pcap_records, "lost": result.lost}  # fmt: skip


def measure(scenario: str, backend: str, rounds: int) -> dict[str, Any]:
    """The median of ``rounds`` checks, or the error that stopped the first."""
    runs = []
    for n in range(rounds):
        try:
            runs.append(one_round(scenario, backend))
        except ServiceError as exc:
            log(f"{scenario} ({backend}): {exc}")
            return {"error": str(exc)}
        log(f"{scenario} ({backend}) round {n + 1}: {runs[-1]['seconds']:.2f} s")
    return {
        "seconds": round(statistics.median(r["seconds"] for r in runs), 2),
        "start_s": round(statistics.median(r["start_s"] for r in runs), 2),
        "max_seconds": round(max(r["seconds"] for r in runs), 2),
        "rounds": rounds,
        "ok": all(r["ok"] for r in runs),
        "records": runs[-1]["records"],
        "lost": sum(r["lost"] for r in runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m benchmarks.check_cost", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("scenarios", nargs="*", choices=[*SERVICES, []], metavar="SCENARIO",
                        help=f"default all: {', '.join(SERVICES)}")  # fmt: skip
    parser.add_argument("--backend", choices=("process", "docker", "both"), default="both",
                        help="both (default) runs Docker only where a daemon answers")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help=f"checks each (default {DEFAULT_ROUNDS})")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="one round of one scenario (tests)")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    scenarios = list(args.scenarios or SERVICES)
    backends = ["process", "docker"] if args.backend == "both" else [args.backend]
    if args.quick:
        scenarios, args.rounds, backends = list(QUICK_SCENARIOS), QUICK_ROUNDS, ["process"]
    if args.rounds < 1:
        parser.error("--rounds must be positive")

    started, load = time.monotonic(), round(os.getloadavg()[0], 2)
    results: dict[str, dict[str, Any]] = {}
    for backend in backends:
        results[backend] = {}
        for scenario in scenarios:
            results[backend][scenario] = measure(scenario, backend, args.rounds)
            if "error" in results[backend][scenario] and backend == "docker":
                log("docker: no daemon or image; the Docker backend is left out")
                results[backend] = {"error": results[backend][scenario]["error"]}
                break
    totals = {
        backend: round(sum(r["seconds"] for r in per.values() if "seconds" in r), 2)
        for backend, per in results.items()
    }
    emit({
        "benchmark": "check_cost",
        "workload": "libtrace check SCENARIO: server start, tracer + tcpdump, traffic, "
                    "drain, pcap parse, comparison (median wall seconds per scenario)",
        "scenarios": scenarios,
        "results": results,
        "total_seconds_per_backend": totals,
        "cpus": os.cpu_count(),
        "loadavg_1m": load,
        "total_seconds": round(time.monotonic() - started, 1),
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

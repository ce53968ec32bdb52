"""Records benchmark: live L7 records per second through tracer → records, with zero loss.

Theory of operation: a private ``redis-server`` (the overhead benchmark's)
takes ``redis-benchmark -t set,get -P 16`` (pipelined: sixteen requests per
write).  The tracer follows only the server's pid, so each request is one
record (a client traced too would double every record and every event).  The
main loop is the consumer a user of :meth:`Tracer.records` runs: poll the
buffer, feed :class:`~libtrace.records.RecordPipeline`, collect records.  The
ring buffer is large (``--buffer-mb``) so that a consumer slower than the
workload falls behind instead of losing events; then the figure is the
consumer's own rate, and the run says so (``consumer_bound``).

Figures: ``records_per_s`` and ``events_per_s`` over the consumer's time (from
the workload's start to the last record, so a backlog counts), ``lost`` (must
be 0), and the accounting ``records == server_commands``: the server's own
``INFO commandstats`` count of the commands it ran meanwhile.  Then the events
are replayed through a fresh pipeline alone (no buffer, no decode), once timed
(``pipeline_records_per_s``) and once under cProfile, whose top ten functions
by own time say what limits the consumer.

Run from the repository root::

    python3 -m benchmarks.records [--requests N] [--buffer-mb MB] [--compat perfbuf,...]
                                  [--quick] [--save-events FILE]
    python3 -m benchmarks.records --replay FILE [--runs N]

``--save-events`` keeps the live run's events (pickled, mode 0600); ``--replay`` is the
pipeline-only mode: it times those events through a fresh pipeline ``--runs``
times (the median is the figure) and profiles one more pass.  It needs neither
root nor redis, and the noisy live path does not blur it.

It prints one JSON object on stdout (progress goes to stderr).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pickle
import pstats
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from libtrace import SocketEvent, Tracer, TracerConfig
from libtrace.cli import compat_list
from libtrace.output import open_private
from libtrace.records import RecordPipeline

from ._common import cpu_seconds, emit, exit_on_sigterm, log, peak_rss_mb, stop
from .overhead import redis_server

#: Requests per test (SET and GET): about 10 s of consumer time here.
DEFAULT_REQUESTS = 300_000
#: redis-benchmark's connections and pipeline depth.
CLIENTS, PIPELINE = 4, 16
TESTS = "set,get"
#: Records per second we require, and the one we aim for.
TARGET_RPS, GOAL_RPS = 50_000, 200_000
#: Ring buffer: room for the backlog of a consumer slower than the workload.
DEFAULT_BUFFER_MB = 256
#: Largest payload cap: a pipelined batch must never be cut.
PAYLOAD_CAP = 16384
#: Poll timeout of the consumer loop.
POLL_MS = 10
#: Polls without events, after the workload ended, that mean everything arrived.
QUIET_POLLS = 5
#: The run may take this long before the benchmark gives up.
RUN_TIMEOUT_S = 300.0
#: Profile rows reported.
PROFILE_ROWS = 10
#: --replay: timed passes by default (the median is reported).
DEFAULT_RUNS = 3
#: --quick: a smoke run for the tests.
QUICK_REQUESTS, QUICK_BUFFER_MB = 2_000, 16


def server_pid(port: int) -> int:
    """The pid of the redis-server that listens on ``port`` (from its INFO)."""
    info = _redis(port, "INFO", "server")
    for line in info.splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":", 1)[1])
    raise RuntimeError(f"no process_id in redis-server's INFO: {info!r}")


def commands_run(port: int) -> int:
    """Commands the server has run (``INFO commandstats``), this INFO not included."""
    total = 0
    for line in _redis(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            fields = dict(part.split("=", 1) for part in line.split(":", 1)[1].split(","))
            total += int(fields["calls"])
    return total


def _redis(port: int, *command: str) -> str:
    done = subprocess.run(["redis-cli", "-p", str(port), *command], capture_output=True,
                          text=True, check=True, timeout=10)  # fmt: skip
    return done.stdout


@dataclass(slots=True)
class Consumed:
    """What the consumer loop saw."""

    events: list[SocketEvent] = field(default_factory=list)
    records: int = 0
    seconds: float = 0.0  #: from the workload's start to the last record
    workload_s: float = 0.0  #: from the workload's start to its exit (as seen by the loop)


def consume(tracer: Tracer, pipeline: RecordPipeline, proc: subprocess.Popen[str]) -> Consumed:
    """Run the consumer until the workload ended and the buffer is quiet."""
    seen = Consumed()
    started = last = time.monotonic()
    quiet, deadline = 0, started + RUN_TIMEOUT_S
    while quiet < QUIET_POLLS:
        batch = tracer.poll(POLL_MS)
        for event in batch:
            done = pipeline.feed(event)
            if done:
                seen.records += len(done)
                last = time.monotonic()
        seen.events += batch
        if not seen.workload_s and proc.poll() is not None:
            seen.workload_s = time.monotonic() - started
        quiet = quiet + 1 if not batch and seen.workload_s else 0
        if time.monotonic() > deadline:
            raise RuntimeError(f"the run did not end within {RUN_TIMEOUT_S:g} s")
    seen.records += len(pipeline.flush())
    seen.seconds = max(last - started, 1e-9)
    return seen


def replay(events: list[SocketEvent], profile: bool = False) -> tuple[int, float, Any]:
    """Feed ``events`` to a fresh pipeline: (records, CPU seconds, profile or None)."""
    pipeline = RecordPipeline()
    profiler = cProfile.Profile() if profile else None
    cpu = cpu_seconds()
    if profiler is not None:
        profiler.enable()
    records = sum(len(pipeline.feed(event)) for event in events) + len(pipeline.flush())
    if profiler is not None:
        profiler.disable()
    return records, cpu_seconds() - cpu, profiler


def top_functions(profiler: cProfile.Profile, rows: int = PROFILE_ROWS) -> list[dict[str, Any]]:
    """The functions with the most own time: where the consumer's time goes."""
    stats = pstats.Stats(profiler)
    entries = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)  # type: ignore[attr-defined]
    total = sum(value[2] for _, value in entries) or 1.0
    out = []
    for (path, line, name), (_, calls, tottime, cumtime, _) in entries[:rows]:
        where = f"{os.path.relpath(path) if path.startswith('/') else path}:{line}"
        out.append({"function": f"{name} ({where})", "calls": calls,
                    "own_s": round(tottime, 3), "own_share": round(tottime / total, 3),
                    "cumulative_s": round(cumtime, 3)})  # fmt: skip
    return out


def save_events(events: list[SocketEvent], path: str) -> None:
    """Keep a live run's events for ``--replay`` (mode 0600: they hold the payloads)."""
    with open_private(path) as out:
        pickle.dump(events, out, protocol=pickle.HIGHEST_PROTOCOL)


def replay_file(path: str, runs: int) -> dict[str, Any]:
    """The pipeline-only figures of events saved by ``--save-events``."""
    with open(path, "rb") as saved:
        events: list[SocketEvent] = pickle.load(saved)  # our own file, written by save_events
    rates, records = [], 0
    for run in range(runs):
        records, cpu, _ = replay(events)
        rates.append(records / cpu if cpu else 0.0)
        log(f"replay {run + 1}/{runs}: {records} records, {rates[-1]:.0f} records/s")
    _, _, profiler = replay(events, profile=True)
    median = statistics.median(rates)
    return {
        "benchmark": "records",
        "mode": "replay",
        "events": len(events),
        "records": records,
        "runs": runs,
        "pipeline_records_per_s": round(median),
        "pipeline_records_per_s_runs": [round(rate) for rate in rates],
        "pipeline_us_per_record": round(1e6 / median, 2) if median else None,
        "profile_top10": top_functions(profiler),
        "target": TARGET_RPS,
        "goal": GOAL_RPS,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m benchmarks.records", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--requests",
        "-n",
        type=int,
        default=DEFAULT_REQUESTS,
        help=f"requests per test (default {DEFAULT_REQUESTS})",
    )
    parser.add_argument(
        "--buffer-mb",
        type=int,
        default=DEFAULT_BUFFER_MB,
        help=f"ring buffer MiB, a power of two (default {DEFAULT_BUFFER_MB})",
    )
    parser.add_argument(
        "--compat",
        type=compat_list,
        default=frozenset(),
        help="force old-kernel paths: perfbuf,probe-read,no-btf",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run (for tests)")
    parser.add_argument("--save-events", metavar="FILE", help="keep the live run's events")
    parser.add_argument(
        "--replay",
        metavar="FILE",
        help="pipeline only: replay events saved by --save-events (no live run)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=DEFAULT_RUNS,
        help=f"--replay: timed passes, the median reported (default {DEFAULT_RUNS})",
    )
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if args.replay:
        if args.runs < 1:
            parser.error("--runs must be positive")
        emit(replay_file(args.replay, args.runs))
        return 0
    if args.quick:
        args.requests, args.buffer_mb = QUICK_REQUESTS, QUICK_BUFFER_MB
    if args.requests < 1:
        parser.error("--requests must be positive")

    started, load = time.monotonic(), round(os.getloadavg()[0], 2)
    workload = (
        f"redis-benchmark -t {TESTS} -n {args.requests} -c {CLIENTS} -P {PIPELINE} "
        "against a local redis-server over loopback, the server's pid traced"
    )
    with redis_server() as port:
        config = TracerConfig(
            pids=(server_pid(port),),
            payload_cap=PAYLOAD_CAP,
            buffer_bytes=args.buffer_mb << 20,
            force_compat=args.compat,
            go_tls=False,
        )
        before = commands_run(port)
        pipeline = RecordPipeline()
        with Tracer(config) as tracer:
            cpu = cpu_seconds()
            proc = subprocess.Popen(
                ["redis-benchmark", "-p", str(port), "-t", TESTS, "-n", str(args.requests),
                 "-c", str(CLIENTS), "-P", str(PIPELINE), "-q", "--csv"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                seen = consume(tracer, pipeline, proc)
                out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
            finally:
                stop(proc)
            cpu = cpu_seconds() - cpu
            stats = tracer.stats()
            variant = tracer.reasons
        if proc.returncode != 0:
            raise RuntimeError(f"redis-benchmark exited with {proc.returncode}: {err.strip()}")
        # The INFO that read `before` ran after it counted: one more command.
        server_commands = commands_run(port) - before - 1
    records, events, seconds = seen.records, seen.events, seen.seconds
    log(f"live: {records} records in {seconds:.2f} s, {stats.lost} lost")
    if args.save_events:
        save_events(events, args.save_events)
    replayed, replay_cpu, _ = replay(events)
    _, _, profiler = replay(events, profile=True)
    emit({
        "benchmark": "records",
        "workload": workload,
        "requests": 2 * args.requests,
        "server_commands": server_commands,
        "records": records,
        "events": len(events),
        "lost": stats.lost,
        "seconds": round(seconds, 3),
        "records_per_s": round(records / seconds),
        "events_per_s": round(len(events) / seconds),
        # The workload's own request rate while traced (until the loop saw it exit).
        "offered_rps": round(2 * args.requests / max(seen.workload_s, 1e-9)),
        # The consumer, not the workload, set the pace: it ended well after the workload.
        "consumer_bound": seconds > 1.1 * seen.workload_s,
        "consumer_cpu_us_per_record": round(cpu / records * 1e6, 2) if records else None,
        "pipeline_records_per_s": round(replayed / replay_cpu) if replay_cpu else None,
        "profile_top10": top_functions(profiler),
        "target": TARGET_RPS,
        "goal": GOAL_RPS,
        "ok": stats.lost == 0 and records == server_commands,
        "compat": sorted(args.compat),
        "variant": variant,
        "redis_benchmark": out.strip().splitlines()[1:],
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "cpus": os.cpu_count(),
        "loadavg_1m": load,
        "total_seconds": round(time.monotonic() - started, 1),
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

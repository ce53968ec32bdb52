"""Overhead benchmark: how much tracing slows a loopback request/response workload.

Theory of operation: a private ``redis-server`` (no persistence) listens on a
free loopback port, and ``redis-benchmark`` (SET then GET, 8 clients, no
pipelining) runs against it, alternately untraced and traced.  A traced run
attaches a :class:`~libtrace.Tracer` with default settings and no filter, so
both the server and the client are traced (four data events per request),
and the main loop drains events while ``redis-benchmark`` runs in its own
process (the tracer never traces itself).  Rounds go in ABBA order (untraced
then traced, then traced then untraced, ...) so that a linear drift of the
machine's speed cancels out; the figure is the median over rounds of the
traced/untraced throughput ratio of the two runs of each round.

``--ledger`` checks the accounting against the server's own counters
(``INFO stats`` and ``commandstats``, read over a raw connection whose own
bytes are known, before and after each traced run): the payload bytes of the
server's traced events in each direction must equal the bytes the server
says it read and wrote meanwhile, and its records (server side) the commands
it ran; every mode reports both (the counting costs the consumer a little,
so it is off unless asked for, and on in ``--quick``).

``--breakdown`` adds two runs per round that split the cost: "filtered" has
every program attached but the pid filter rejects all traffic (the hooks'
cost), and "undrained" traces everything but never reads the buffer, so
events past the first buffer-full are dropped in the kernel (the cost of
building events in the kernel, without user space).

With ``--records`` (or ``--breakdown``), a "busy" run per round puts the
records consumer's cost in two: the untraced workload runs beside a busy loop
(``_busy.py``) that keeps a CPU busy the share of the time the records
consumer did (its CPU time over its run's length, from the round's records
run, else the last round's), so its ratio is what the consumer's CPU share
alone costs here, whatever it computes with it.

Run from the repository root::

    python3 -m benchmarks.overhead [--requests N] [--rounds R] [--compat perfbuf,...]

It prints one JSON object on stdout (progress goes to stderr).
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from libtrace import Direction, EventType, SocketEvent, Tracer, TracerConfig
from libtrace.cli import compat_list
from libtrace.records import LiveRecord, RecordPipeline

from ._bpf_floor import empty_program_ns
from ._bpf_stats import bpf_stats, lt_run_time
from ._busy import BusyLoop
from ._common import (
    cpu_seconds,
    emit,
    exit_on_sigterm,
    free_port,
    log,
    peak_rss_mb,
    stop,
    wait_until,
)

#: Requests per test (SET and GET each) and per run: about 3 s untraced here.
DEFAULT_REQUESTS = 100_000
#: Untraced/traced pairs; three keeps the default run well under 90 s.
DEFAULT_ROUNDS = 3
#: redis-benchmark's parallel connections, and pipelining off: request/response.
CLIENTS = 8
TESTS = "set,get"
#: The traced/untraced throughput ratio we require, and the one we aim for.
TARGET_RATIO = 0.90
GOAL_RATIO = 0.95
#: How long redis-server may take to answer PING after it starts.
SERVER_START_TIMEOUT_S = 10.0
#: Attempts at starting redis-server (a free port can be taken before it binds).
SERVER_START_ATTEMPTS = 3
#: One redis-benchmark run may take this long before the benchmark gives up.
RUN_TIMEOUT_S = 120.0
#: Poll timeout of the drain loop: short, so the loop notices the end quickly.
POLL_MS = 50
#: 64-byte reads and writes of the file-copy workload (--breakdown).
DD_COUNT = 200_000
#: --quick: a smoke run for the tests.
QUICK_REQUESTS, QUICK_ROUNDS = 2_000, 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One redis-benchmark run."""

    rps: float  #: requests per second over both tests (total requests / total time)
    per_test: dict[str, float]  #: redis-benchmark's own figure per test
    requests: int = 0  #: requests over both tests
    events: int = 0  #: events the tracer delivered to Python
    lost: int = 0  #: events the kernel dropped
    kernel_events: int = 0  #: events the programs output
    records: int = 0  #: L7 records made (records mode)
    commands: int = 0  #: SET and GET calls the server counted (records mode)
    ledger: dict[str, int] | None = None  #: --ledger: the server's counts and ours
    tracer_cpu_s: float = 0.0  #: CPU seconds of this (tracing) process during the run
    bpf_ns: int = 0  #: BPF run time of libtrace's programs during the run (bpf_stats)
    bpf_runs: int = 0  #: program runs during the run

    @property
    def seconds(self) -> float:
        """How long the workload ran (its requests at its rate)."""
        return self.requests / self.rps


def _ping(port: int) -> bool:
    done = subprocess.run(
        ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() == "PONG"


@contextmanager
def redis_server() -> Iterator[int]:
    """A private, persistence-free redis-server on a free loopback port; yields the port."""
    for attempt in range(1, SERVER_START_ATTEMPTS + 1):
        port = free_port()
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--logfile", ""]
        server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:

            def ready(server: subprocess.Popen[bytes] = server, port: int = port) -> bool:
                if server.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {server.returncode}")
                return _ping(port)

            try:
                wait_until(ready, SERVER_START_TIMEOUT_S, f"redis-server on port {port}")
            except RuntimeError:
                if attempt == SERVER_START_ATTEMPTS:
                    raise
                continue
            yield port
            return
        finally:
            stop(server)


def _bench_argv(port: int, requests: int) -> list[str]:
    return [
        "redis-benchmark", "-p", str(port), "-t", TESTS, "-n", str(requests),
        "-c", str(CLIENTS), "-P", "1", "-q", "--csv",
    ]  # fmt: skip


def _parse(text: str) -> dict[str, float]:
    """redis-benchmark --csv output: a header row, then ``"TEST","rps",...``."""
    rows = list(csv.reader(text.splitlines()))
    per_test = {row[0]: float(row[1]) for row in rows[1:] if len(row) > 1}
    if not per_test:
        raise RuntimeError(f"no results in redis-benchmark's output: {text!r}")
    return per_test


def _combined(per_test: dict[str, float], requests: int) -> float:
    """All requests over the time all tests took (each took requests/rps)."""
    return len(per_test) * requests / sum(requests / rps for rps in per_test.values())


def _run(port: int, requests: int, consume: Callable[[], None] | None = None) -> Run:
    """One redis-benchmark run; ``consume`` is called in a loop while it lasts."""
    cpu = cpu_seconds()
    deadline = time.monotonic() + RUN_TIMEOUT_S
    proc = subprocess.Popen(
        _bench_argv(port, requests), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        if consume is not None:
            while proc.poll() is None and time.monotonic() < deadline:
                consume()
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        stop(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"redis-benchmark exited with {proc.returncode}: {err.strip()}")
    per_test = _parse(out)
    return Run(
        rps=_combined(per_test, requests),
        per_test=per_test,
        requests=len(per_test) * requests,
        tracer_cpu_s=cpu_seconds() - cpu,
    )


def _busy_run(port: int, requests: int, records: list[Run]) -> Run:
    """An untraced run beside a busy loop taking the CPU share of the last records
    run (the first round runs records before busy, the next the other way round)."""
    if not records:
        raise RuntimeError("a busy run needs a records run before it")
    last = records[-1]
    share = min(1.0, max(last.tracer_cpu_s / last.seconds, 0.001))
    with BusyLoop(share) as busy:
        run = _run(port, requests)
    return replace(run, tracer_cpu_s=busy.cpu_s)


def _commands(port: int) -> int:
    """SET and GET calls in the server's INFO commandstats."""
    out = subprocess.run(["redis-cli", "-p", str(port), "info", "commandstats"],
                         capture_output=True, text=True, check=False).stdout  # fmt: skip
    calls = 0
    for line in out.splitlines():
        if line.startswith(("cmdstat_set:", "cmdstat_get:")):
            calls += int(line.split("calls=", 1)[1].split(",", 1)[0])
    return calls


#: The ledger's query: the server's pid, its byte counters, its command counts.
LEDGER_QUERY = b"*4\r\n$4\r\nINFO\r\n$6\r\nserver\r\n$5\r\nstats\r\n$12\r\ncommandstats\r\n"


@dataclass(frozen=True, slots=True)
class ServerCounts:
    """What redis-server counted up to one ledger query (its own query included
    in ``input_bytes``, its reply in none of them)."""

    pid: int
    input_bytes: int
    output_bytes: int
    commands: int  #: every command it ran
    reply_bytes: int  #: this query's reply, which the next counts as output


def _server_counts(port: int) -> ServerCounts:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(LEDGER_QUERY)
        reply = b""
        while b"\r\n" not in reply:
            reply += sock.recv(65536)
        header, _, body = reply.partition(b"\r\n")
        length = int(header[1:])
        while len(body) < length + 2:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("redis-server closed the ledger connection")
            body += chunk
    fields: dict[str, str] = {}
    commands = 0
    for line in body[:length].decode().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value
        if name.startswith("cmdstat_"):
            commands += int(value.split("calls=", 1)[1].split(",", 1)[0])
    return ServerCounts(
        pid=int(fields["process_id"]),
        input_bytes=int(fields["total_net_input_bytes"]),
        output_bytes=int(fields["total_net_output_bytes"]),
        commands=commands,
        reply_bytes=len(reply[: len(header) + 2]) + length + 2,
    )


class _ServerSide:
    """Our side of the ledger: the server's traced bytes and records."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.bytes = [0, 0]  # by Direction: egress (written), ingress (read)
        self.records = 0

    def add_events(self, events: list[SocketEvent]) -> None:
        pid, sizes = self.pid, self.bytes
        for event in events:
            if event.pid == pid and event.type is EventType.DATA:
                sizes[event.direction] += event.size

    def add_records(self, records: list[LiveRecord]) -> None:
        self.records += sum(1 for record in records if record.side == "server")

    def ledger(self, before: ServerCounts, after: ServerCounts) -> dict[str, int]:
        return {
            # The after query's own bytes are in its input count; the before
            # query's reply went out after its counts were taken; the before
            # query itself ran (and was counted) after them.
            "server_read_bytes": after.input_bytes - before.input_bytes - len(LEDGER_QUERY),
            "traced_read_bytes": self.bytes[Direction.INGRESS],
            "server_written_bytes": after.output_bytes - before.output_bytes - before.reply_bytes,
            "traced_written_bytes": self.bytes[Direction.EGRESS],
            "server_commands": after.commands - before.commands - 1,
            "server_records": self.records,
        }


def _traced_run(
    port: int, requests: int, config: TracerConfig, mode: str, ledger: bool = False
) -> tuple[Run, list[str]]:
    """A run with a tracer attached for its whole length; also the variant's reasons.

    ``mode``: ``filtered`` (config filters everything out) or ``undrained``
    (nobody reads), ``events`` (poll), ``records`` (poll and make records).
    Its CPU time is the consumer loop's: loading the programs is not counted.
    """
    pipeline = RecordPipeline() if mode == "records" else None
    records = 0
    commands_before = _commands(port) if pipeline is not None else 0
    before = _server_counts(port) if ledger else None
    ours = _ServerSide(before.pid) if before is not None else None
    with Tracer(config) as tracer:

        def take(events: list[SocketEvent]) -> None:
            nonlocal records
            if ours is not None:
                ours.add_events(events)
            if pipeline is not None:
                for event in events:
                    made = pipeline.feed(event)
                    records += len(made)
                    if ours is not None:
                        ours.add_records(made)

        def poll() -> None:
            tracer.poll(POLL_MS)

        def make_records() -> None:
            take(tracer.poll(POLL_MS))

        if ours is not None:
            poll = make_records  # the events are counted, even where no records are made

        consume = {"events": poll, "records": make_records}.get(mode)
        ns0, runs0 = lt_run_time()
        run = _run(port, requests, consume)
        ns1, runs1 = lt_run_time()
        rest = tracer.drain() if consume is not None else []  # the consumer takes all
        take(rest)
        if pipeline is not None:  # the open connections
            flushed = pipeline.flush()
            records += len(flushed)
            if ours is not None:
                ours.add_records(flushed)
    stats = tracer.stats()  # final: close() read the buffer and the counters
    after = _server_counts(port) if ledger else None
    traced = replace(
        run,
        events=stats.events,
        lost=stats.lost,
        kernel_events=stats.kernel_events,
        records=records,
        commands=_commands(port) - commands_before if pipeline is not None else 0,
        bpf_ns=ns1 - ns0,
        bpf_runs=runs1 - runs0,
        ledger=ours.ledger(before, after) if ours and before and after else None,
    )
    return traced, tracer.reasons


def _dd(count: int) -> float:
    """Seconds of a file-copy workload: ``count`` 64-byte reads and writes of non-sockets."""
    start = time.monotonic()
    subprocess.run(["dd", "if=/dev/zero", "of=/dev/null", "bs=64", f"count={count}"],
                   check=True, capture_output=True)  # fmt: skip
    return time.monotonic() - start


def _dd_traced(count: int, config: TracerConfig) -> tuple[float, int, int]:
    """(seconds, BPF ns, program runs) of the file copy with the tracer attached."""
    with Tracer(config):
        ns0, runs0 = lt_run_time()
        seconds = _dd(count)
        ns1, runs1 = lt_run_time()
    return seconds, ns1 - ns0, runs1 - runs0


def _ratio(num: list[float], den: list[float]) -> float:
    return statistics.median(n / d for n, d in zip(num, den, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m benchmarks.overhead", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--requests",
        "-n",
        type=int,
        default=DEFAULT_REQUESTS,
        help=f"requests per test and run (default {DEFAULT_REQUESTS})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"untraced/traced pairs (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument(
        "--compat",
        type=compat_list,
        default=frozenset(),
        help="force old-kernel paths: perfbuf,probe-read,no-btf",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also run filtered-out and undrained tracers, to split the cost",
    )
    parser.add_argument(
        "--records",
        action="store_true",
        help="also run a records consumer (Tracer.records' pipeline) per round",
    )
    parser.add_argument(
        "--dd-count",
        type=int,
        default=DD_COUNT,
        help=f"reads and writes of the file-copy workload (--breakdown; default {DD_COUNT})",
    )
    parser.add_argument(
        "--ledger",
        action="store_true",
        help="check traced bytes and records against the server's own counters (--quick: on)",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run (for tests)")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if args.quick:
        args.requests, args.rounds, args.dd_count = QUICK_REQUESTS, QUICK_ROUNDS, 2_000
        args.ledger = True
    if args.requests < 1 or args.rounds < 1:
        parser.error("--requests and --rounds must be positive")

    # The workload is redis (no Go TLS): the uprobes have their own benchmark,
    # and attaching them to the machine's Go daemons would only slow each round's stop.
    config = TracerConfig(force_compat=args.compat, go_tls=False)
    # Every hook runs and the pid filter rejects everything: no pid but ours
    # is in it, and ours is never traced.
    filtered = TracerConfig(force_compat=args.compat, pids=(os.getpid(),), go_tls=False)
    modes = ["untraced", "events"]
    if args.breakdown:
        modes = ["untraced", "filtered", "undrained", "events", "records", "busy"]
    elif args.records:
        modes += ["records", "busy"]
    runs: dict[str, list[Run]] = {mode: [] for mode in modes}
    dd_runs: dict[str, list[float]] = {"untraced": [], "traced": []}
    dd_bpf: list[tuple[int, int]] = []
    reasons: list[str] = []
    # Other load on the machine skews every figure: say how much there was.
    started, load = time.monotonic(), round(os.getloadavg()[0], 2)
    with bpf_stats() as stats_on, redis_server() as port:
        _run(port, min(args.requests, QUICK_REQUESTS))  # warm-up: page cache, allocator
        for index in range(args.rounds):
            # ABBA: a linear drift of the machine's speed cancels out over two rounds.
            order = modes if index % 2 == 0 else modes[::-1]
            for mode in order:
                if mode == "untraced":
                    run = _run(port, args.requests)
                elif mode == "busy":
                    run = _busy_run(port, args.requests, runs["records"])
                else:
                    run, reasons = _traced_run(
                        port, args.requests, filtered if mode == "filtered" else config, mode,
                        ledger=args.ledger and mode in ("events", "records"),
                    )  # fmt: skip
                runs[mode].append(run)
                log(f"round {index + 1}/{args.rounds} {mode}: {run.rps:.0f} req/s")
            if args.breakdown:
                dd_runs["untraced"].append(_dd(args.dd_count))
                seconds, ns, count = _dd_traced(args.dd_count, config)
                dd_runs["traced"].append(seconds)
                dd_bpf.append((ns, count))
        floor_ns = (
            empty_program_ns(lambda: _dd(args.dd_count), 2 * args.dd_count)
            if args.breakdown and stats_on
            else None
        )

    untraced_rps = [round(run.rps, 1) for run in runs["untraced"]]
    traced = runs["events"]
    events = sum(run.events for run in traced)
    cpu = sum(run.tracer_cpu_s for run in traced)
    result: dict[str, object] = {
        "benchmark": "overhead",
        "workload": (
            f"redis-benchmark -t {TESTS} -n {args.requests} -c {CLIENTS} -P 1 "
            "against a local redis-server over loopback, all pids traced"
        ),
        "untraced_rps": untraced_rps,
        "traced_rps": [round(run.rps, 1) for run in traced],
        "ratio_median": round(
            _ratio([r.rps for r in traced], [r.rps for r in runs["untraced"]]), 3
        ),
        "target": TARGET_RATIO,
        "goal": GOAL_RATIO,
        "events": events,
        "lost": sum(run.lost for run in traced),
        "events_per_request": round(events / sum(run.requests for run in traced), 2),
        "tracer_cpu_us_per_event": round(cpu / events * 1e6, 2) if events else None,
        # Cores the tracing process kept busy while the traced runs lasted.
        "tracer_cores": round(cpu / sum(run.seconds for run in traced), 2),
        # Peak memory of the tracing process; Tracer.poll() returns all it gathered.
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "compat": sorted(args.compat),
        "variant": reasons,
        "bpf_stats": stats_on,
        "modes": {
            mode: _mode_figures(mode_runs, runs["untraced"], stats_on, traced=mode != "busy")
            for mode, mode_runs in runs.items()
        },
        "cpus": os.cpu_count(),
        "loadavg_1m": load,
        "seconds": round(time.monotonic() - started, 1),
    }
    if args.breakdown:
        ns = sum(n for n, _ in dd_bpf)
        syscalls = 2 * args.dd_count * len(dd_bpf)
        result["file_copy"] = {
            "workload": f"dd if=/dev/zero of=/dev/null bs=64 count={args.dd_count}",
            "untraced_s": [round(x, 3) for x in dd_runs["untraced"]],
            "traced_s": [round(x, 3) for x in dd_runs["traced"]],
            "ratio_median": round(_ratio(dd_runs["untraced"], dd_runs["traced"]), 3),
            "bpf_ns_per_syscall": round(ns / syscalls, 1) if stats_on else None,
            # What the statistics charge an empty program on the same exits: the
            # part of bpf_ns_per_syscall (and of bpf_ns_per_event) that is theirs.
            "bpf_ns_empty_program": round(floor_ns, 1) if floor_ns is not None else None,
        }
    emit(result)
    return 0


def _mode_figures(
    runs: list[Run], untraced: list[Run], stats_on: bool, *, traced: bool = True
) -> dict[str, object]:
    """One mode's throughput against the untraced runs of the same rounds, and its
    costs per traced request."""
    requests = sum(run.requests for run in runs)
    figures: dict[str, object] = {
        "rps": [round(run.rps, 1) for run in runs],
        "ratio_median": round(_ratio([r.rps for r in runs], [r.rps for r in untraced]), 3),
    }
    if runs is untraced or not requests:
        return figures
    cpu_s = sum(r.tracer_cpu_s for r in runs)
    figures["user_us_per_request"] = round(cpu_s / requests * 1e6, 2)
    # Cores the tracing process (busy: the loop) kept busy while the runs lasted.
    figures["tracer_cores"] = round(cpu_s / sum(r.seconds for r in runs), 3)
    if not traced:
        return figures  # busy: a loop beside the workload, no tracer
    figures.update({
        "events": sum(r.events for r in runs),
        "kernel_events": sum(r.kernel_events for r in runs),
        "lost": sum(r.lost for r in runs),
    })  # fmt: skip
    if stats_on:
        bpf_ns = sum(r.bpf_ns for r in runs)
        figures["bpf_us_per_request"] = round(bpf_ns / requests / 1000, 2)
        output = sum(r.kernel_events + r.lost for r in runs)
        if output:
            figures["bpf_ns_per_event"] = round(bpf_ns / output, 1)
    if any(r.commands for r in runs):
        figures["records"] = sum(r.records for r in runs)
        figures["server_commands"] = sum(r.commands for r in runs)
    ledgers = [r.ledger for r in runs if r.ledger is not None]
    if ledgers:
        figures["ledger"] = {key: sum(ledger[key] for ledger in ledgers) for key in ledgers[0]}
    return figures


if __name__ == "__main__":
    raise SystemExit(main())

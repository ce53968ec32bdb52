"""Drain benchmark: the highest event rate that reaches Python with no loss, and memory.

Theory of operation: a small C writer (``drain_writer.c``, compiled with cc
into a temporary directory) holds a loopback TCP connection to a forked
reader child that only drains it, and on command writes 64-byte chunks at a
given rate for a given time: every chunk is one event.  Several writer
processes (``--writers``, default 3) share each step's rate, so that one
writer's own speed is not the limit.  A writer sends its chunks ``--per-call``
N at a time (default 8, the messages of an mmsg call the programs follow)
with one ``sendmmsg()``, still one event per chunk (one per message), and
with ``MSG_MORE``, so that TCP corks them into full segments: the loopback's
work per segment, which the tracer does not touch, is then not what limits
the writers.  ``--per-call 1`` is one plain ``write()`` per chunk.  The
tracer is filtered to the writers' pids, so the readers' reads are not
traced, and the main loop drains events while the writers run.

First the writers fill most of one CPU's share of the buffer while nothing
reads it, and the loop times draining that backlog with the writers idle:
Python's own drain rate, with no writer competing for the CPU.  Then the
target rate steps up (50 k, 100 k, 150 k, 200 k, 300 k, ... events/s, a few
seconds each); after each step the
loop drains until every event the programs output has arrived, and records
the rate offered (writes the writers made per second), the rate delivered
(events that reached Python per second, up to the last one), and the events
lost.  Stepping stops at the first step that loses events or falls behind,
or when the writers themselves cannot offer more.  The answer is the highest
delivered rate of a step with nothing lost and delivered ≈ offered.

The cost that usually sets the limit is Python's per event: reading each
record (from the ring's mapping; a ctypes callback per sample with the perf
buffer) and :func:`libtrace.tracer.events.decode`.  The decode
alone is timed on a synthetic record, and the tracing process's CPU time per
delivered event is measured on each step and on the backlog, so the JSON
says which it is.

Run from the repository root::

    python3 benchmarks/drain.py [--seconds S] [--rates 50000,100000,...] [--compat perfbuf,...]
                                [--writers N] [--per-call N]

It prints one JSON object on stdout (progress goes to stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import ctypes
import os
import select
import socket
import subprocess
import tempfile
import time
import timeit
from dataclasses import asdict, dataclass

from benchmarks._common import (
    c_compiler,
    cpu_seconds,
    emit,
    exit_on_sigterm,
    log,
    peak_rss_mb,
    stop,
)
from libtrace import Tracer, TracerConfig
from libtrace.cli import compat_list
from libtrace.tracer._layout import MAX_MMSG
from libtrace.tracer.events import HEADER_SIZE, RawEvent, decode, native_decoder

WRITER_SOURCE = Path(__file__).resolve().parent / "drain_writer.c"
#: Bytes per write() in drain_writer.c (CHUNK): a small request-sized event.
CHUNK = 64
#: Target rates stepped through, events/s.
DEFAULT_RATES = (
    50_000, 100_000, 150_000, 200_000, 300_000, 400_000, 600_000, 800_000, 1_000_000, 1_200_000,
)  # fmt: skip
#: Seconds per step: long enough for a reader that falls behind to fill the
#: 8 MiB ring buffer (about 45 000 such events) and lose.
DEFAULT_STEP_S = 3.0
#: The whole run stops stepping once this much time has gone.
DEFAULT_BUDGET_S = 80.0
#: The rate we aim to drain without loss.
TARGET_EPS = 1_000_000
#: Writer processes (so that one writer's speed is not the limit).
DEFAULT_WRITERS = 3
#: Most chunks per sendmmsg() call: the messages of an mmsg call the programs
#: follow (socket_trace.h's MAX_MMSG; the rest would be a gap, not events).
#: drain_writer.c is compiled with it.
MAX_PER_CALL = MAX_MMSG
#: Chunks per call by default: the most.
DEFAULT_PER_CALL = MAX_PER_CALL
#: Delivered within this fraction of offered counts as keeping up; the rest
#: is the latency of the last partial batch (the programs skip wakeups).
KEEP_UP = 0.95
#: A writer that offers less than this fraction of its target has hit its own
#: limit (tracing slows its syscalls too): higher targets would add nothing.
WRITER_SATURATED = 0.90
#: The backlog measurement fills this fraction of one CPU's share of the
#: buffer (the perf buffer is per CPU), so that nothing is lost.
BACKLOG_FILL = 0.8
#: Bytes a buffer adds to each record: the ring buffer's 8-byte header (the
#: perf buffer's 8-byte header plus a 4-byte size is about as much).
BUFFER_RECORD_OVERHEAD = 12
#: The backlog is written over this long, nobody reading.
BACKLOG_WRITE_S = 1.0
#: --quick backlog.
QUICK_BACKLOG = 2_000
#: Poll timeout of the drain loop; it also bounds how late the loop sees the
#: writer's end of step, which the delivered rate is timed from.
POLL_MS = 10
#: After the writer's step ends, how long the last events may take to arrive.
DRAIN_TIMEOUT_S = 10.0
#: How long the writer may take to connect to its reader and say ready.
WRITER_START_TIMEOUT_S = 10.0
#: Iterations of the decode microbenchmark, and repeats (the best is kept).
DECODE_LOOPS, DECODE_REPEATS = 50_000, 5
#: --quick: a smoke run for the tests.
QUICK_RATES, QUICK_STEP_S, QUICK_DECODE_LOOPS = (20_000, 50_000), 0.5, 2_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One rate step."""

    target_eps: int  #: the rate asked of the writer
    offered_eps: float  #: writes per second the writer made
    #: events per second that reached Python: over the writer's time plus
    #: the drain lag, so a reader that keeps up delivers at the offered rate
    delivered_eps: float
    writes: int
    events: int  #: events delivered to Python
    lost: int  #: events the kernel had no buffer room for
    drain_lag_s: float  #: from the writer's last write until the last event arrived
    tracer_cpu_us_per_event: float  #: CPU of the tracing process per delivered event
    tracer_cores: float  #: that CPU over the step's wall time
    ok: bool  #: nothing lost, every write delivered, delivered ≈ offered


def compile_writer(directory: str) -> str:
    """Build drain_writer.c into ``directory``; return the executable's path."""
    exe = os.path.join(directory, "drain_writer")
    subprocess.run([c_compiler(), "-O2", "-Wall", f"-DMAX_PER_CALL={MAX_PER_CALL}", "-o", exe,
                    str(WRITER_SOURCE)], check=True)  # fmt: skip
    return exe


class Writer:
    """The drain_writer process, driven one step at a time over its stdin/stdout."""

    def __init__(self, exe: str, per_call: int = 1) -> None:
        self.proc = subprocess.Popen(
            [exe, str(per_call)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
        )
        self._pending = b""
        self._busy = False  # a step is running
        try:
            line = self._line(WRITER_START_TIMEOUT_S)
            if line is None or not line.startswith("ready "):
                raise RuntimeError(f"drain_writer did not start: {line!r}")
        except BaseException:
            stop(self.proc)
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _line(self, timeout: float) -> str | None:
        """The next line of output, or None if none comes within ``timeout`` seconds."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = max(0.0, deadline - time.monotonic())
            if not select.select([self.proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError(f"drain_writer exited with {self.proc.wait()}")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode()

    def start(self, rate: int, seconds: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{rate} {max(1, round(seconds * 1000))}\n".encode())
        self._busy = True

    def done(self) -> tuple[int, float] | None:
        """(writes, seconds) once the current step is over; None while it runs."""
        line = self._line(0)
        if line is None:
            return None
        _, writes, elapsed_ns = line.split()
        self._busy = False
        return int(writes), int(elapsed_ns) / 1e9

    def wait(self, timeout: float) -> tuple[int, float]:
        """Block until the current step is over; (writes, seconds)."""
        deadline = time.monotonic() + timeout
        while (done := self.done()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"drain_writer did not finish a step in {timeout:g} s")
            select.select([self.proc.stdout], [], [], left)
        return done

    def close(self) -> None:
        """End the writer: by EOF between steps, by a signal in the middle of one."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # EOF: the writer closes its socket and exits
        if self._busy:
            stop(self.proc)
        try:
            self.proc.wait(timeout=WRITER_START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            stop(self.proc)


class Writers:
    """Several drain_writer processes driven as one: a step's rate is split
    between them, and it is over when every one is done (writes summed, the
    longest time).  More than one, so that a writer's own speed (each traced
    write costs it the BPF programs' run time) does not cap the offered rate."""

    def __init__(self, exe: str, count: int, per_call: int = 1) -> None:
        self.writers: list[Writer] = []
        try:
            for _ in range(count):
                self.writers.append(Writer(exe, per_call))
        except BaseException:
            self.close()
            raise
        self._done: dict[int, tuple[int, float]] = {}

    @property
    def pids(self) -> tuple[int, ...]:
        return tuple(writer.pid for writer in self.writers)

    def start(self, rate: int, seconds: float) -> None:
        self._done = {}
        share, extra = divmod(rate, len(self.writers))
        for index, writer in enumerate(self.writers):
            writer.start(share + (index < extra), seconds)

    def done(self) -> tuple[int, float] | None:
        for index, writer in enumerate(self.writers):
            if index not in self._done and (result := writer.done()) is not None:
                self._done[index] = result
        if len(self._done) < len(self.writers):
            return None
        return sum(w for w, _ in self._done.values()), max(s for _, s in self._done.values())

    def wait(self, timeout: float) -> tuple[int, float]:
        deadline = time.monotonic() + timeout
        while (done := self.done()) is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"drain_writer did not finish a step in {timeout:g} s")
            time.sleep(0.005)
        return done

    def close(self) -> None:
        for writer in self.writers:
            writer.close()


def drain_rest(tracer: Tracer) -> tuple[int, float]:
    """Poll until everything the programs output has arrived: (events, time of the last)."""
    events, last = 0, time.monotonic()
    deadline = last + DRAIN_TIMEOUT_S
    while True:
        # A poll hands over at most one batch (Tracer caps it), so everything
        # has arrived once a poll comes back empty while the programs output
        # nothing new.  (Counting arrivals against kernel_events would wait
        # forever for events user space drops on purpose, as no-BTF may.)
        output = tracer.stats().kernel_events
        batch = tracer.poll(POLL_MS)
        if batch:
            events += len(batch)
            last = time.monotonic()
        elif tracer.stats().kernel_events == output:
            return events, last
        if time.monotonic() > deadline:
            raise RuntimeError(f"events kept coming {DRAIN_TIMEOUT_S:g} s after the writer ended")


def run_step(tracer: Tracer, writer: Writers, rate: int, seconds: float) -> Step:
    """Offer ``rate`` events/s for ``seconds``, draining all the while, then drain the rest."""
    before = tracer.stats()
    cpu, started = cpu_seconds(), time.monotonic()
    writer.start(rate, seconds)
    events = 0
    while (done := writer.done()) is None:
        events += len(tracer.poll(POLL_MS))
        if time.monotonic() - started > seconds + DRAIN_TIMEOUT_S:
            raise RuntimeError(f"drain_writer did not finish a {seconds} s step")
    writes, elapsed = done
    finished = time.monotonic()
    rest, last = drain_rest(tracer)
    events += rest
    cpu = cpu_seconds() - cpu
    lost = tracer.stats().lost - before.lost
    offered = writes / elapsed
    lag = max(0.0, last - finished) if rest else 0.0
    delivered = events / (elapsed + lag)
    return Step(
        target_eps=rate,
        offered_eps=round(offered),
        delivered_eps=round(delivered),
        writes=writes,
        events=events,
        lost=lost,
        drain_lag_s=round(lag, 3),
        tracer_cpu_us_per_event=round(cpu / events * 1e6, 2) if events else 0.0,
        tracer_cores=round(cpu / (time.monotonic() - started), 2),
        ok=lost == 0 and events >= writes and delivered >= KEEP_UP * offered,
    )


def backlog_events(buffer_bytes: int) -> int:
    """Events that fit in one CPU's share of the buffer (the perf buffer is per CPU)."""
    record = HEADER_SIZE + CHUNK + BUFFER_RECORD_OVERHEAD
    return int(BACKLOG_FILL * buffer_bytes / (os.cpu_count() or 1) / record)


def drain_backlog(tracer: Tracer, writer: Writers, count: int) -> dict[str, float]:
    """Python's drain rate alone: time draining ``count`` events the writer left queued.

    The writer fills the buffer while nothing reads it, and is idle while the
    backlog drains, so this is the per-event cost of user space with no
    writer competing for the CPU: callback, decode, queue and poll.
    """
    before = tracer.stats()
    writer.start(count, BACKLOG_WRITE_S)
    done = writer.wait(BACKLOG_WRITE_S + DRAIN_TIMEOUT_S)
    cpu, started = cpu_seconds(), time.monotonic()
    events, last = drain_rest(tracer)
    cpu = cpu_seconds() - cpu
    seconds = max(last - started, 1e-9)
    return {
        "writes": done[0],
        "events": events,
        "lost": tracer.stats().lost - before.lost,
        "drain_s": round(seconds, 3),
        "eps": round(events / seconds),
        "cpu_us_per_event": round(cpu / events * 1e6, 2) if events else 0.0,
    }


def synthetic_record() -> bytes:
    """A data event as the ring buffer holds it: an IPv4 TCP write of CHUNK bytes."""
    raw = RawEvent(
        ts_ns=time.monotonic_ns(),
        pid=4242,
        tid=4242,
        fd=3,
        size=CHUNK,
        captured=CHUNK,
        type=1,  # LT_EVENT_DATA
        direction=0,  # LT_EGRESS
        family=socket.AF_INET,
        l4=socket.IPPROTO_TCP,
        lport=40000,
        rport=6379,
        syscall=2,  # LT_SYS_WRITE
        comm=b"drain_writer",
    )
    ctypes.memmove(raw.laddr, socket.inet_aton("127.0.0.1"), 4)
    ctypes.memmove(raw.raddr, socket.inet_aton("127.0.0.1"), 4)
    return bytes(raw) + b"x" * CHUNK


def decode_cost_us(loops: int) -> float:
    """CPU microseconds :func:`decode` takes per record (best of several repeats).

    Timed in process CPU time, not wall time, so other load on the machine
    (which only steals wall time) does not inflate it.
    """
    record = synthetic_record()
    times = timeit.repeat(
        lambda: decode(record), number=loops, repeat=DECODE_REPEATS, timer=time.process_time
    )
    return min(times) / loops * 1e6


def _calls(per_call: int) -> str:
    """The writers' syscall, as the JSON's workload names it."""
    return "write()" if per_call == 1 else f"sendmmsg() of {per_call} messages"


def _rates(text: str) -> tuple[int, ...]:
    try:
        rates = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text}") from None
    if not rates or min(rates) < 1:
        raise argparse.ArgumentTypeError("rates must be positive")
    return rates


def _limit(
    steps: list[Step],
    backlog: dict[str, float],
    decode_us: float,
    stop_reason: str,
    compat: frozenset[str],
) -> str:
    """A sentence naming what limits the drain rate, from what was measured."""
    busiest = max(steps, key=lambda step: step.delivered_eps)
    compiled = native_decoder() is not None
    rest = [
        "the compiled walk over the mapped ring" if compiled else "the walk over the mapped ring",
        "the time order",
        "the poll loop",
    ]
    if "perfbuf" in compat:
        rest[0] = (
            "the compiled walk over the perf rings"
            if compiled
            else "libbpf's ctypes callback per perf sample"
        )
    if "no-btf" in compat:
        rest.insert(1, "completing each event from /proc (no BTF)")
    return (
        f"{stop_reason}. At {busiest.delivered_eps} events/s the tracing process used "
        f"{busiest.tracer_cores} cores ({busiest.tracer_cpu_us_per_event} us of CPU per "
        f"event). Alone on a core, one Python thread drained a backlog at {backlog['eps']} "
        f"events/s ({backlog['cpu_us_per_event']} us of CPU per event), of which "
        f"decode() is {decode_us:.2f} us; the rest is {', '.join(rest[:-1])} and {rest[-1]}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 benchmarks/drain.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--rates",
        type=_rates,
        default=DEFAULT_RATES,
        help="target events/s to step through, comma-separated",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_STEP_S,
        help=f"seconds per step (default {DEFAULT_STEP_S:g})",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET_S,
        help=f"stop stepping after this many seconds (default {DEFAULT_BUDGET_S:g})",
    )
    parser.add_argument(
        "--compat",
        type=compat_list,
        default=frozenset(),
        help="force old-kernel paths: perfbuf,probe-read,no-btf",
    )
    parser.add_argument(
        "--writers",
        type=int,
        default=DEFAULT_WRITERS,
        help=f"writer processes sharing each step's rate (default {DEFAULT_WRITERS})",
    )
    parser.add_argument(
        "--per-call",
        type=int,
        default=DEFAULT_PER_CALL,
        help="chunks a writer sends per syscall: 1 is write(), more is sendmmsg() with one "
        f"event per message (up to {MAX_PER_CALL}; default {DEFAULT_PER_CALL})",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny smoke run (for tests)")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if args.writers < 1:
        parser.error("--writers must be at least 1")
    if not 1 <= args.per_call <= MAX_PER_CALL:
        parser.error(f"--per-call must be 1 to {MAX_PER_CALL}")
    decode_loops = DECODE_LOOPS
    if args.quick:
        args.rates, args.seconds, decode_loops = QUICK_RATES, QUICK_STEP_S, QUICK_DECODE_LOOPS
    if args.seconds <= 0:
        parser.error("--seconds must be positive")

    started, load = time.monotonic(), round(os.getloadavg()[0], 2)
    decode_us = decode_cost_us(decode_loops)
    steps: list[Step] = []
    stop_reason = "every step kept up: the writer was not pushed further"
    writer: Writers | None = None
    with tempfile.TemporaryDirectory(prefix="libtrace-drain-") as tmp:
        try:
            writer = Writers(compile_writer(tmp), args.writers, args.per_call)
            config = TracerConfig(pids=writer.pids, force_compat=args.compat)
            with Tracer(config) as tracer:
                reasons = tracer.reasons
                count = QUICK_BACKLOG if args.quick else backlog_events(config.buffer_bytes)
                backlog = drain_backlog(tracer, writer, count)
                log(f"backlog of {backlog['events']} events drained at {backlog['eps']}/s")
                for rate in sorted(args.rates):
                    if time.monotonic() - started + args.seconds > args.budget:
                        stop_reason = f"time budget of {args.budget:g} s reached"
                        break
                    step = run_step(tracer, writer, rate, args.seconds)
                    steps.append(step)
                    log(f"target {rate}/s: offered {step.offered_eps}/s, "
                        f"delivered {step.delivered_eps}/s, lost {step.lost}")  # fmt: skip
                    if not step.ok:
                        stop_reason = (
                            f"the drain fell behind at {rate} events/s "
                            f"(lost {step.lost}, delivered {step.delivered_eps}/s)"
                        )
                        break
                    if step.offered_eps < WRITER_SATURATED * rate:
                        stop_reason = (
                            f"the traced writers ({args.writers}) could not offer more than "
                            f"{step.offered_eps} writes/s"
                        )
                        break
        finally:
            if writer is not None:
                writer.close()

    good = [step.delivered_eps for step in steps if step.ok]
    emit(
        {
            "benchmark": "drain",
            "workload": f"{_calls(args.per_call)} of {CHUNK} bytes on loopback TCP by "
            f"{args.writers} writer processes, tracer filtered to them",
            "writers": args.writers,
            "per_call": args.per_call,
            "cpus": os.cpu_count(),
            "steps": [asdict(step) for step in steps],
            "max_zero_loss_eps": max(good, default=0),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "target_eps": TARGET_EPS,
            "decode_us_per_event": round(decode_us, 2),
            "backlog": backlog,
            "limit": _limit(steps, backlog, decode_us, stop_reason, args.compat)
            if steps
            else stop_reason,
            "compat": sorted(args.compat),
            "variant": reasons,
            "loadavg_1m": load,
            "seconds": round(time.monotonic() - started, 1),
        }
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Soak benchmark: the eight protocols' traffic for a long time through ``Tracer.records()``.

Every service of :data:`libtrace.services.SERVICES` runs as a real server
(the ``process`` backend, as ``libtrace check`` runs them); their traffic
scripts (the check's, one child per round and service) run again and again
for ``--seconds`` (default 20 minutes) while this process traces the
services' ports and reads records through a :class:`RecordPipeline`.  Every
``--interval`` seconds it samples what could grow without bound: its own
RSS and open file descriptors, the entries of the BPF programs' hash maps
(``Tracer.occupancy``), the connections the pipeline holds, the tracer's and
the pipeline's counters.  It is not a test: it prints the samples and, per
measure, the first, middle and last values and the maximum, one JSON object
on stdout (progress on stderr).

Usage (root)::

    python3 -m benchmarks.soak [--seconds 1200] [--interval 30]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict
from typing import Any

from libtrace import Tracer, TracerConfig
from libtrace.check import free_endpoint
from libtrace.check._traffic import child_env, traffic_argv
from libtrace.records import RecordPipeline, trace_records
from libtrace.services import SERVICES, start

from ._common import emit, exit_on_sigterm, log

DEFAULT_SECONDS, DEFAULT_INTERVAL = 1200.0, 30.0
#: A traffic script that takes longer than this is stopped (and counted as failed).
TRAFFIC_TIMEOUT_S = 180.0


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Traffic(threading.Thread):
    """Run each service's traffic script in turn until told to stop."""

    def __init__(self, running: list[Any]) -> None:
        super().__init__(daemon=True)
        self.running, self.stopping = running, threading.Event()
        self.rounds = 0
        self.failures: dict[str, int] = {}

    def run(self) -> None:
        while not self.stopping.is_set():
            for service in self.running:
                if self.stopping.is_set():
                    return
                try:
                    argv = traffic_argv(service)
                    done = subprocess.run(argv, env=child_env(), capture_output=True,
                                          timeout=TRAFFIC_TIMEOUT_S)  # fmt: skip
                    ok = done.returncode == 0
                except subprocess.TimeoutExpired:
                    ok = False
                if not ok:
                    name = service.service.name
                    self.failures[name] = self.failures.get(name, 0) + 1
            self.rounds += 1


def summary(samples: list[dict[str, Any]], key: str) -> dict[str, Any]:
    values = [sample[key] for sample in samples]
    return {"first": values[0], "middle": values[len(values) // 2], "last": values[-1],
            "max": max(values)}  # fmt: skip


def soak(seconds: float, interval: float) -> dict[str, Any]:
    samples: list[dict[str, Any]] = []
    pipeline = RecordPipeline()
    by_protocol: dict[str, int] = {}
    with ExitStack() as stack:
        running = []
        for name, service in SERVICES.items():
            host, port = free_endpoint(service)
            log(f"starting {name} on {host}:{port}")
            running.append(stack.enter_context(start(service, "process", host=host, port=port)))
        ports = tuple(sorted({r.port for r in running}))
        tracer = stack.enter_context(Tracer(TracerConfig(ports=ports, go_tls=False)))
        traffic = Traffic(running)
        began = time.monotonic()
        next_sample = began
        traffic.start()
        log(f"soaking for {seconds:g} s, a sample every {interval:g} s")
        for record in trace_records(tracer, seconds, pipeline=pipeline):
            by_protocol[record.protocol] = by_protocol.get(record.protocol, 0) + 1
            now = time.monotonic()
            if now >= next_sample:
                next_sample = now + interval
                stats = tracer.stats()
                sample = {"t_s": round(now - began, 1), "rss_kib": rss_kib(), "fds": open_fds(),
                          "maps": tracer.occupancy(), "connections": pipeline.connections,
                          "tracer": asdict(stats), "pipeline": asdict(pipeline.stats),
                          "records": dict(by_protocol)}  # fmt: skip
                samples.append(sample)
                log(f"{sample['t_s']:>7} s: rss {sample['rss_kib']} KiB, fds {sample['fds']}, "
                    f"connections {sample['connections']}, maps {sample['maps']}, "
                    f"lost {stats.lost}")  # fmt: skip
        traffic.stopping.set()
        traffic.join(timeout=TRAFFIC_TIMEOUT_S)
    for sample in samples:
        sample["map_entries"] = sum(sample["maps"].values())
    return {
        "benchmark": "soak",
        "seconds": seconds,
        "interval_s": interval,
        "rounds": traffic.rounds,
        "traffic_failures": traffic.failures,
        "records": by_protocol,
        "lost": samples[-1]["tracer"]["lost"] if samples else None,
        "growth": {key: summary(samples, key)
                   for key in ("rss_kib", "fds", "map_entries", "connections")} if samples else {},
        "samples": samples,
        "cpus": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 -m benchmarks.soak",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL)
    args = parser.parse_args()
    exit_on_sigterm()
    emit(soak(args.seconds, args.interval))


if __name__ == "__main__":
    main()

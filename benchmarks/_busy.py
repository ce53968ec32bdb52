"""A stand-in consumer: a process that only keeps one CPU busy a given share of the time.

What a tracer's consumer costs the workload it watches has two parts: the CPU
time it takes from the workload's processes, whatever it computes with it, and
anything beyond (its wakeups, its cache footprint, locks it shares).  A busy
loop that burns the same share of a CPU, in bursts about as long as the
consumer's, has only the first part: run beside the untraced workload, its
throughput ratio is what any consumer of that CPU share costs on this machine.
The overhead benchmark runs it at the records consumer's measured share, so
that its JSON says how much of the records mode's cost is the consumer's CPU
share alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Self

from ._common import stop

#: One burst per period: the records consumer wakes about this often (the ring
#: wakes it once 256 KiB are pending, every few to ten milliseconds here).
PERIOD_S = 0.01
#: The loop itself: busy ``share`` of each period, asleep the rest, on absolute
#: deadlines (a late wakeup shortens the next pause, not the burst).
LOOP = """
import sys, time
share, period = float(sys.argv[1]), float(sys.argv[2])
clock = time.perf_counter
start = clock()
while True:
    end = start + share * period
    while clock() < end:
        pass
    start += period
    pause = start - clock()
    if pause > 0:
        time.sleep(pause)
    else:
        start = clock()
"""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BusyLoop:
    """The loop in a child process from ``__enter__`` to ``__exit__``; ``cpu_s`` is
    then the CPU time it burned."""

    def __init__(self, share: float, period_s: float = PERIOD_S) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"a CPU share is in (0, 1], not {share}")
        self.share, self.period_s = share, period_s
        self.cpu_s = 0.0
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        argv = [sys.executable, "-c", LOOP, str(self.share), str(self.period_s)]
        self._proc = subprocess.Popen(argv)
        return self

    def __exit__(self, *_exc_info: object) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            # Read while it runs: once reaped, its /proc entry is gone.
            fields = _stat_fields(proc.pid)
            self.cpu_s = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        finally:
            stop(proc)


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (which may hold spaces):
    [0] is the state, [11] utime and [12] stime (proc(5)'s fields 14 and 15)."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
        return stat.read().rsplit(")", 1)[1].split()

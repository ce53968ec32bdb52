"""The BPF programs' per-CPU batches of data events, and their flush from user space.

Where the data syscalls' exit programs read their own arguments (5.15+), they
gather small events per CPU and output a batch as one ring record
(``struct lt_batch`` in socket_trace.bpf.c): one ring reservation and commit
for many events, which were a third of a data event's BPF time.  A batch is
output by its CPU's next event that would not fit, and by the object's
``lt_flush_batches`` program, which :class:`BatchFlush` runs:

- before each read of the ring, so that every event stamped before the read
  is in the ring when it is read (what the time order counts on, see
  reorder.py) and a quiet socket's last events wait no longer than a poll;
- after the programs are detached, so that an orderly stop loses nothing.
"""

from __future__ import annotations

import time

from . import _libbpf
from ._layout import BATCH_BYTES, BATCH_MAX_CPUS, RawBatch, RawFlushResult

FLUSH_PROGRAM = "lt_flush_batches"
#: Runs of the flush while it finds a batch held by a program filling it (on
#: another CPU: microseconds).  A program preempted mid-fill may hold it longer;
#: the next read's flush takes that batch.
HELD_RUNS = 20
HELD_PAUSE_S = 0.0002

#: A batch is output whole, so on a small ring it is kept to this share of it.
RING_SHARE = 8


def supported(cpus: int) -> bool:
    """Whether the flush reaches every CPU's batch (it walks BATCH_MAX_CPUS)."""
    return cpus <= BATCH_MAX_CPUS


def batch_bytes(ring_bytes: int) -> int:
    """How much a CPU's batch holds before it is output, for a ring of ``ring_bytes``."""
    return min(BATCH_BYTES, ring_bytes // RING_SHARE)


class BatchFlush:
    """Outputs every CPU's batch into the ring, on call."""

    def __init__(self, obj: _libbpf.BpfObject) -> None:
        self._result = RawFlushResult()
        self._runner = obj.syscall_runner(FLUSH_PROGRAM, self._result)
        self._batches = obj.map("batches")

    def pending(self) -> int:
        """Events the CPUs' batches hold now."""
        at = RawBatch.count.offset
        values = (self._batches.lookup(cpu.to_bytes(4, "little"))
                  for cpu in range(_libbpf.num_possible_cpus()))  # fmt: skip
        return sum(int.from_bytes(v[at : at + 4], "little") for v in values if v)

    def __call__(self) -> None:
        result, run = self._result, self._runner.run
        for _ in range(HELD_RUNS):
            result.held = 0
            run()
            if not result.held:
                return
            time.sleep(HELD_PAUSE_S)

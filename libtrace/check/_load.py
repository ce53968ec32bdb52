"""The load run: pipelined ``redis-benchmark`` against the redis service, records vs the server.

The differential check proves records right on a small scenario; this proves
none go missing under load.  The tracer follows only the server's processes
(a traced client would double every event), ``redis-benchmark -P 16`` sends
sixteen commands a write, and the traced server-side Redis records must
equal what the server counted itself (``INFO commandstats``, the redis
service's ``server_stats``) — or the tracer reports ``lost > 0``, which
accounts for the missing ones.  ``benchmarks/records.py`` measures the rate
of the same path; this is the accounting, as a library call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..records import RecordPipeline
from ..services import start
from ..tracer.tracer import Tracer, TracerConfig
from ._run import BUFFER_BYTES, PAYLOAD_CAP, free_endpoint, service_of
from ._traffic import drain, run_traced

#: Requests in all (half SET, half GET), pipeline depth and client connections.
LOAD_REQUESTS, LOAD_PIPELINE, LOAD_CLIENTS = 100_000, 16, 4
#: The commands the benchmark runs.
LOAD_TESTS = ("set", "get")


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Traced server-side records against the server's own command count."""

    requests: int  #: commands redis-benchmark was asked to send
    records: int  #: server-side Redis records traced
    server_commands: int  #: commands the server ran meanwhile (INFO commandstats)
    lost: int  #: events the kernel could not hand over
    events: int
    seconds: float  #: from the benchmark's start to the last record

    @property
    def accounted(self) -> bool:
        """Every command is a record, or the tracer reports lost events (and records are fewer)."""
        if self.lost == 0:
            return self.records == self.server_commands
        return self.records < self.server_commands

    def to_json(self) -> dict[str, object]:
        return {"requests": self.requests, "records": self.records,
                "server_commands": self.server_commands, "lost": self.lost,
                "events": self.events, "seconds": round(self.seconds, 3),
                "accounted": self.accounted}  # fmt: skip


def run_load(backend: str = "process", requests: int = LOAD_REQUESTS) -> LoadResult:
    """Run ``redis-benchmark -P 16`` (``requests`` commands) against a traced redis service.

    Raises:
        ServiceError: redis, its image, or redis-benchmark failed.
    """
    service = service_of("redis")
    host, port = free_endpoint(service)
    per_test = requests // len(LOAD_TESTS)
    argv = [
        "redis-benchmark", "-h", host, "-p", str(port), "-t", ",".join(LOAD_TESTS),
        "-n", str(per_test), "-P", str(LOAD_PIPELINE), "-c", str(LOAD_CLIENTS), "-q",
    ]  # fmt: skip
    with start(service, backend, host=host, port=port) as running:
        before = sum(running.server_stats().values())
        config = TracerConfig(pids=tuple(running.pids()), ports=(port,), payload_cap=PAYLOAD_CAP,
                              buffer_bytes=BUFFER_BYTES, go_tls=False)  # fmt: skip
        pipeline = RecordPipeline(protocols=("redis",))
        began = time.monotonic()
        with Tracer(config) as tracer:
            records = run_traced(tracer, pipeline, argv, "redis-benchmark")
            drain(tracer, pipeline, records)
            records += pipeline.flush()
            stats = tracer.stats()
        seconds = time.monotonic() - began
        # The INFO that read `before` is counted from then on: one command not of the load.
        commands = sum(running.server_stats().values()) - before - 1
    served = sum(1 for r in records if r.side == "server")
    return LoadResult(requests=per_test * len(LOAD_TESTS), records=served,
                      server_commands=commands, lost=stats.lost, events=stats.events,
                      seconds=seconds)  # fmt: skip

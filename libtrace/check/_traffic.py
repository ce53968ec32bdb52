"""The traffic side of the check: the service's client script in a child process, traced.

The tracer never traces its own process, and several traffic scripts are
Python (kafka-python, paho-mqtt, PyMySQL, raw sockets): run here, their
client end would be invisible.  So the script runs in a child
(``python -m libtrace.check._traffic NAME BACKEND HOST PORT WORKDIR``, a
:class:`~libtrace.services.Running` rebuilt from those: traffic needs only
where the server listens and its work directory), and both ends of every
connection are traced.  Meanwhile this process drains the tracer into the
pipeline, so the ring buffer never fills with a whole scenario's events.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from ..records import LiveRecord
from ..services import SERVICES, Running, ServiceError, failure
from ..tracer.events import SocketEvent
from ..tracer.tracer import Tracer

#: The package root, first on the child's path: the child runs this very libtrace.
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
#: A traffic script may take this long (Kafka's consumer polls take seconds).
TRAFFIC_TIMEOUT_S = 180.0
#: Tracer poll timeout while the child runs.
POLL_MS = 50
#: Polls without an event, after the child ended, that mean the buffer is drained.
QUIET_POLLS = 5
#: Exit code of a child whose traffic failed with a ServiceError (its message on stderr).
TRAFFIC_FAILED = 3


class Feeder(Protocol):
    """What takes events and returns completed records (a RecordPipeline)."""

    def feed(self, event: SocketEvent) -> list[LiveRecord]: ...


def traffic_argv(running: Running) -> list[str]:
    return [sys.executable, "-m", "libtrace.check._traffic", running.service.name,
            running.backend, running.host, str(running.port), str(running.workdir)]  # fmt: skip


def child_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    root = str(PACKAGE_ROOT)
    return {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{path}" if path else root}


def drain(tracer: Tracer, pipeline: Feeder, records: list[LiveRecord]) -> None:
    """Poll until the buffer stays quiet for :data:`QUIET_POLLS` polls."""
    quiet = 0
    while quiet < QUIET_POLLS:
        batch = tracer.poll(POLL_MS)
        for event in batch:
            records += pipeline.feed(event)
        quiet = 0 if batch else quiet + 1


def run_traced(
    tracer: Tracer, pipeline: Feeder, argv: Sequence[str], what: str,
    timeout: float = TRAFFIC_TIMEOUT_S,
) -> list[LiveRecord]:  # fmt: skip
    """Run ``argv`` to its end while feeding the tracer's events to ``pipeline``.

    Returns the records completed meanwhile (the caller drains and flushes).

    Raises:
        ServiceError: the child failed (its stderr's tail ends the message) or timed out.
    """
    records: list[LiveRecord] = []
    with subprocess.Popen(
        argv, env=child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as child:  # fmt: skip
        deadline = time.monotonic() + timeout
        try:
            while child.poll() is None:
                for event in tracer.poll(POLL_MS):
                    records += pipeline.feed(event)
                if time.monotonic() > deadline:
                    raise ServiceError(f"{what} did not finish within {timeout:g} s")
        finally:
            if child.poll() is None:
                child.kill()
        err = child.stderr.read().decode(errors="replace") if child.stderr else ""
    if child.returncode != 0:
        raise failure(f"{what} exited {child.returncode}", err)
    return records


def main(argv: Sequence[str] | None = None) -> int:
    """The child: drive one service's traffic against a server someone else started."""
    name, backend, host, port, workdir = argv if argv is not None else sys.argv[1:]
    running = Running(SERVICES[name], backend, host, int(port), Path(workdir))
    try:
        running.traffic()
    except ServiceError as exc:
        print(exc, file=sys.stderr)
        return TRAFFIC_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Helpers of the live record tests: real servers, a traced run.

Comparing records (``protocol_view``, ``during_capture``) is library code now,
in :mod:`libtrace.check`; they are re-exported here for the tests that use them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from libtrace import SocketEvent, Tracer
from libtrace.check import during_capture, protocol_view
from libtrace.services.record import _process, _wait_port

from ..tracing import drain

__all__ = ["during_capture", "env", "protocol_view", "record_scenario", "redis_server",
           "run_clients", "traced"]  # fmt: skip

ROOT = Path(__file__).resolve().parents[2]
#: A recorder scenario runs for a few seconds; this only stops a hung one.
SCENARIO_TIMEOUT_S = 120


def env() -> dict[str, str]:
    """The environment of a child that imports this checkout of libtrace."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}


def traced(
    tracer: Tracer, argv: list[str], timeout: float = SCENARIO_TIMEOUT_S
) -> list[SocketEvent]:
    """Run ``argv`` to its end while draining the tracer; every event, to the last."""
    events: list[SocketEvent] = []
    with subprocess.Popen(
        argv, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as child:
        deadline = time.monotonic() + timeout
        while child.poll() is None:
            events += tracer.poll(50)
            if time.monotonic() > deadline:
                child.kill()
                raise TimeoutError(f"{argv} did not finish in {timeout} s")
        assert child.returncode == 0, child.stderr.read() if child.stderr else ""
    return events + drain(tracer)


def record_scenario(tracer: Tracer, protocol: str, out: Path) -> list[SocketEvent]:
    """Run libtrace.services.record's scenario (server, tcpdump, clients) under the tracer."""
    return traced(
        tracer, [sys.executable, "-m", "libtrace.services.record", protocol, "--out", str(out)]
    )


@contextmanager
def redis_server(port: int) -> Iterator[None]:
    """A throwaway redis-server on loopback ``port``."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        _process(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
            ]
        ),
    ):
        _wait_port(port)
        yield


def run_clients(*commands: list[str]) -> Callable[[], None]:
    """A function that runs each client command to its end."""

    def run() -> None:
        for argv in commands:
            subprocess.run(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30, check=True
            )

    return run

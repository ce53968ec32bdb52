"""What the benchmarks share: subprocess hygiene, readiness polling, CPU clocks, output."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from libtrace.compiled import MODULES, compiled_modules

#: Pause between two readiness checks: short, so start-up adds little.
READY_POLL_S = 0.02
#: How long a subprocess gets to exit after being asked before it is killed.
STOP_GRACE_S = 5.0


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that ``finally`` blocks stop our subprocesses."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(ready: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``ready()`` until it returns true.

    Raises:
        TimeoutError: it did not within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:g} s")
        time.sleep(READY_POLL_S)


def stop(proc: subprocess.Popen[Any] | None) -> None:
    """End a subprocess we started: terminate, wait a little, then kill."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def c_compiler() -> str:
    """The C compiler the benchmarks' small helper programs are built with."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("clang")
    if cc is None:
        raise RuntimeError("no C compiler: install gcc or clang (or set CC)")
    return cc


def cpu_seconds() -> float:
    """User plus system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This process's peak resident set (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the JSON result."""
    print(message, file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    # Which build ran: a checkout runs the pure-Python modules, an installed
    # wheel those mypyc compiled (libtrace/compiled.py); the figures differ.
    compiled = compiled_modules()
    result.setdefault("compiled_modules", f"{len(compiled)}/{len(MODULES)}")
    print(json.dumps(result), flush=True)

"""Readiness: poll a protocol probe until the server answers, never a blind sleep.

A probe is one cheap request in the server's own protocol (a PING, a greeting,
a DNS query), so "ready" means the server answers, not merely that a socket
is bound.  Probes return False on any network error; the poll loop also
watches the server, so a server that dies is reported at once with its log
instead of after the timeout.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable

from ._errors import failure
from ._running import Handle, Running

#: Seconds one probe may block on a socket.
PROBE_TIMEOUT_S = 0.5
#: First and largest pause between probes (doubling in between).
POLL_FIRST_S, POLL_MAX_S = 0.02, 0.5


def wait_ready(running: Running, handle: Handle, timeout: float) -> None:
    """Poll ``running.service.ready`` until it passes.

    Raises:
        ServiceError: the server exited, or did not answer within ``timeout`` seconds.
    """
    name, deadline, pause = running.service.name, time.monotonic() + timeout, POLL_FIRST_S
    while True:
        if not handle.alive():
            raise failure(f"{name} ({running.backend}) exited before it was ready", handle.log())
        if running.service.ready(running):
            return
        if time.monotonic() > deadline:
            raise failure(
                f"{name} ({running.backend}) did not answer on {running.host}:{running.port} "
                f"within {timeout:.0f} s",
                handle.log(),
            )
        time.sleep(pause)
        pause = min(pause * 2, POLL_MAX_S)


def exchange(running: Running, request: bytes, answered: Callable[[bytes], bool]) -> bool:
    """Send ``request`` over TCP and read until ``answered(reply)``; False on any failure."""
    with (
        contextlib.suppress(OSError),
        socket.create_connection((running.host, running.port), PROBE_TIMEOUT_S) as sock,
    ):
        if request:
            sock.sendall(request)
        reply = b""
        while not answered(reply):
            data = sock.recv(4096)
            if not data:
                return False
            reply += data
        return True
    return False


def tcp_accepts(running: Running) -> bool:
    """True when a TCP connection to the service succeeds (for servers that speak last)."""
    with (
        contextlib.suppress(OSError),
        socket.create_connection((running.host, running.port), PROBE_TIMEOUT_S),
    ):
        return True
    return False

"""Running client programs and raw sockets for traffic scripts, with checked outcomes.

Traffic must be deterministic and its failures visible: a client that exits
with an unexpected code raises :class:`ServiceError` with its stderr, rather
than leaving a silently shorter capture.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
from collections.abc import Callable

from ._errors import ServiceError, failure

#: Seconds one client command may take.
CLIENT_TIMEOUT_S = 60.0
#: Seconds a raw-socket exchange waits for the server's last byte.
RAW_READ_TIMEOUT_S = 2.0


def run_client(*argv: str, ok: tuple[int, ...] = (0,), input: bytes | None = None) -> bytes:
    """Run one client command and return its stdout.

    Raises:
        ServiceError: the client could not run or exited with a code not in ``ok``.
    """
    try:
        proc = subprocess.run(
            argv, input=input, capture_output=True, timeout=CLIENT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise failure(f"client {argv[0]} could not run", str(exc)) from exc
    if proc.returncode not in ok:
        raise failure(
            f"client {' '.join(argv[:3])} … exited {proc.returncode}",
            proc.stderr.decode(errors="replace"),
        )
    return proc.stdout


def raw_exchange(host: str, port: int, payload: bytes) -> bytes:
    """Send ``payload`` on one TCP connection, half-close, and return all the server said.

    Half-closing after the write makes the server answer everything (pipelined
    requests included) and then close, so no sleep is needed to collect replies.
    """
    reply = b""
    with socket.create_connection((host, port), 5) as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(RAW_READ_TIMEOUT_S)
        with contextlib.suppress(OSError):
            while data := sock.recv(65536):
                reply += data
    return reply


#: Seconds a traffic script waits for an acknowledgement it expects (SUBACK, a message).
EXPECT_TIMEOUT_S = 10.0


def wait_for(done: Callable[[], bool], what: str, timeout: float = EXPECT_TIMEOUT_S) -> None:
    """Poll ``done`` until it is true.

    Raises:
        ServiceError: ``what`` did not happen within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise ServiceError(f"traffic: {what} did not happen within {timeout:.0f} s")
        time.sleep(0.01)


def count_matches(pattern: str, text: str) -> dict[str, int]:
    """How often each value of ``pattern``'s first group occurs in ``text`` (a log's counters)."""
    counts: dict[str, int] = {}
    for value in re.findall(pattern, text, re.MULTILINE):
        counts[value] = counts.get(value, 0) + 1
    return counts

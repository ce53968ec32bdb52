"""The tracer's side of the check, provably live before the traffic starts.

tcpdump is proven live by a marker datagram it must write (:mod:`._capture`);
the tracer gets the same proof.  Its port filter also admits a marker port (a
UDP socket of this process, which the tracer never traces); a child process
sends a datagram with a fresh payload there until the tracer delivers that
very datagram.  Only then does the traffic start, so a request can never
come before the programs are attached, the configuration written and the
buffer read.  Marker events are kept out of the records.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..records import LiveRecord, RecordPipeline
from ..tracer.events import SocketEvent
from ..tracer.tracer import Tracer
from ._errors import CheckError

#: Seconds the tracer may take to deliver a marker.
MARKER_TIMEOUT_S = 20.0
#: Tracer poll timeout while waiting for a marker.
POLL_MS = 50


class MarkedPipeline:
    """A :class:`RecordPipeline` that drops the marker flow's events."""

    def __init__(self, pipeline: RecordPipeline, marker_port: int) -> None:
        self.pipeline = pipeline
        self.marker_port = marker_port

    def is_marker(self, event: SocketEvent) -> bool:
        return self.marker_port in (event.lport, event.rport)

    def feed(self, event: SocketEvent) -> list[LiveRecord]:
        return [] if self.is_marker(event) else self.pipeline.feed(event)


class TracerMarker:
    """A UDP port for the tracer's marker flow (bound here, so nothing else is hit)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.port = int(sock.getsockname()[1])

    def prove_live(
        self, tracer: Tracer, pipeline: MarkedPipeline, records: list[LiveRecord]
    ) -> None:
        """Send markers from a child until the tracer delivers one; feed other events meanwhile.

        Raises:
            CheckError: no marker came through in :data:`MARKER_TIMEOUT_S`.
        """
        payload = b"libtrace-check-tracer-marker-" + secrets.token_hex(8).encode()
        send = (f"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                f".sendto({payload!r}, ('127.0.0.1', {self.port}))")  # fmt: skip
        deadline = time.monotonic() + MARKER_TIMEOUT_S
        while True:
            subprocess.run([sys.executable, "-c", send], check=True, timeout=30)
            for event in tracer.poll(POLL_MS):
                if pipeline.is_marker(event):
                    if payload in event.data:
                        return
                    continue
                records += pipeline.pipeline.feed(event)
            if time.monotonic() > deadline:
                raise CheckError(
                    f"the tracer delivered no marker in {MARKER_TIMEOUT_S:g} s: "
                    f"its programs are not live ({tracer.stats()})"
                )


@contextmanager
def tracer_marker() -> Iterator[TracerMarker]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield TracerMarker(sock)

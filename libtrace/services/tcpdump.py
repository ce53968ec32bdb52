"""tcpdump on loopback, provably live from first to last packet: the one
capture of the harness (``libtrace check``'s wire side, the fixture recorder,
the Go TLS capture tests).

Theory of operation: tcpdump says "listening on lo" before its capture
actually runs, and on SIGINT it may drop packets still queued in its socket.
So the capture's filter also admits a *marker* flow — UDP datagrams that a
socket of ours sends to itself — and :class:`Capture` sends a marker with a
fresh payload, then waits until those bytes are in the file (``-U`` writes
each packet at once): before the traffic, that proves the capture is live;
after it, that every packet sent before the marker is written.  The marker
flow's port is neither a service's nor a protocol's; its datagrams make no
record (and the marker's payload reads as no protocol).
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dpkt  # type: ignore[import-untyped]

from ..pcap.derive import read_frames, write_frames
from ._errors import ServiceError, log_tail


class CaptureError(ServiceError):
    """tcpdump is missing, exited, or did not write what was sent."""


#: Seconds tcpdump may take to show a marker in its file.
MARKER_TIMEOUT_S = 10.0
#: Pause between two looks at the file (and between two marker datagrams).
MARKER_POLL_S = 0.02
#: Seconds tcpdump may take to exit after SIGINT before it is killed.
STOP_GRACE_S = 5.0
#: tcpdump's capture buffer, KiB (-B): a busy or emulated machine schedules it
#: late, and the kernel drops what a full buffer cannot hold.
BUFFER_KIB = 64 * 1024
#: The snapshot length tcpdump -s 0 writes in a capture's header.
TCPDUMP_SNAPLEN = 262144
#: tcpdump's umask: the capture it creates is readable by its owner only.
CAPTURE_UMASK = 0o077
#: tcpdump's last words: how many packets the kernel dropped.
_DROPPED = re.compile(r"(\d+) packets? dropped by kernel")


def capture_filter(expression: str, marker_port: int) -> str:
    """The BPF filter: the traffic ``expression`` names, plus our marker flow."""
    return f"({expression}) or (udp and host 127.0.0.1 and port {marker_port})"


class Capture:
    """A running tcpdump writing ``path``; :meth:`mark` proves what it has written."""

    def __init__(self, proc: subprocess.Popen[bytes], path: Path, log: Path, marker: Any) -> None:
        self.proc, self.path, self.log = proc, path, log
        self._marker = marker

    def mark(self) -> None:
        """Send a marker and wait until tcpdump wrote it (everything before it is written).

        Raises:
            CaptureError: tcpdump exited, or did not write the marker in time.
        """
        payload = b"libtrace-check-marker-" + secrets.token_hex(8).encode()
        deadline = time.monotonic() + MARKER_TIMEOUT_S
        while not self._written(payload):
            if self.proc.poll() is not None:
                raise CaptureError(f"tcpdump exited {self.proc.returncode}; log: {self._tail()}")
            if time.monotonic() > deadline:
                raise CaptureError(
                    f"tcpdump wrote nothing in {MARKER_TIMEOUT_S:g} s: {self._tail()}"
                )
            self._marker.send(payload)
            time.sleep(MARKER_POLL_S)

    def _written(self, payload: bytes) -> bool:
        try:
            return payload in self.path.read_bytes()
        except FileNotFoundError:
            return False

    def _tail(self) -> str:
        with contextlib.suppress(OSError):
            return log_tail(self.log.read_text(errors="replace"))
        return "(no log)"

    def dropped(self) -> int | None:
        """Packets the kernel dropped before tcpdump read them (its own count at exit);
        None while it runs or if it said nothing."""
        if self.proc.poll() is None:
            return None
        with contextlib.suppress(OSError):
            match = _DROPPED.search(self.log.read_text(errors="replace"))
            if match:
                return int(match.group(1))
        return None

    def stop(self) -> None:
        """SIGINT, then SIGKILL after a grace period (idempotent)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def capture(
    path: Path, expression: str, *, keep_markers: bool = True, log: Path | None = None
) -> Iterator[Capture]:
    """tcpdump on ``lo`` for the traffic the BPF filter ``expression`` admits,
    live when yielded, stopped on exit.  Call :meth:`Capture.mark` at the end of
    the traffic: then every packet sent before it is in the file.

    ``--network host`` containers talk over the host's loopback too.  With
    ``keep_markers=False`` the marker flow is taken out of the file once
    tcpdump has stopped (a fixture holds the service's traffic alone).
    tcpdump's messages go to ``log`` (default: beside ``path``).  The capture is
    created mode 0600 (Debian's tcpdump makes its own user its owner).

    Raises:
        CaptureError: tcpdump is missing or its capture never went live.
    """
    if shutil.which("tcpdump") is None:
        raise CaptureError("tcpdump is not installed (Debian package tcpdump)")
    log = log or path.with_suffix(".tcpdump.log")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as marker:
        marker.bind(("127.0.0.1", 0))
        marker.connect(marker.getsockname())  # to itself: no ICMP, nothing else listens
        # --immediate-mode: without it libpcap hands over packets per filled block or
        # after a 1 s timeout, and each marker would wait that long.
        argv = ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-n", "-s", "0",
                "-B", str(BUFFER_KIB), "-w", str(path),
                capture_filter(expression, marker.getsockname()[1])]  # fmt: skip
        with open(log, "wb") as err:
            # tcpdump creates the capture itself: the umask makes it mode 0600 (it
            # holds every payload), as libtrace's own files of records are; a file
            # left there would keep its mode, so it goes first.
            path.unlink(missing_ok=True)
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                    umask=CAPTURE_UMASK)
        running = Capture(proc, path, log, marker)
        try:
            running.mark()
            yield running
        finally:
            running.stop()
            if not keep_markers and path.exists():
                _drop_flow(path, marker.getsockname()[1])


def _drop_flow(path: Path, udp_port: int) -> None:
    """Rewrite the capture without the UDP datagrams to or from ``udp_port``."""
    linktype, frames = read_frames(path)
    kept = [f for f in frames if not _is_udp_port(f[1], udp_port)]
    # tcpdump -s 0's snapshot length: loopback packets run to 64 KiB.
    staged = write_frames(path.with_suffix(".kept"), linktype, kept, snaplen=TCPDUMP_SNAPLEN)
    staged.replace(path)


def _is_udp_port(frame: bytes, port: int) -> bool:
    ip = dpkt.ethernet.Ethernet(frame).data
    udp = getattr(ip, "data", None)
    return isinstance(udp, dpkt.udp.UDP) and port in (udp.sport, udp.dport)

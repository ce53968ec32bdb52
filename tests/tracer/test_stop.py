"""An orderly stop loses nothing: what the programs output reaches the caller.

A burst of writes, then SIGINT at once: ``libtrace trace`` must print every
event that reached the buffer before it exits, and its stats must add up
(every event the programs output is delivered, dropped or counted as the
tracer's own; nothing vanishes between the kernel and the last line).
"""

from __future__ import annotations

import json
import signal
import socket

import pytest

from ..test_cli import start_trace

pytestmark = [pytest.mark.root, pytest.mark.bpf]

#: More than one poll hands over (MAX_BATCH is 8192), fewer than the default
#: 8 MiB buffer holds at this size.
BURST = 30_000


def _connected_pair() -> tuple[socket.socket, socket.socket, int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        client = socket.create_connection(("127.0.0.1", port))
        server, _ = listener.accept()
    return client, server, port


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_a_burst_then_a_signal_delivers_every_event(how: signal.Signals) -> None:
    client, server, port = _connected_pair()
    with client, server:
        proc = start_trace("--json", "--port", str(port))
        for _ in range(BURST):
            client.send(b"x" * 16)
        proc.send_signal(how)  # at once: most of the burst is still in the buffer
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    stats = lines[-1]
    data = [line for line in lines[:-1] if line["type"] == "data"]
    writes = [line for line in data if line["direction"] == "egress"]
    assert stats["type"] == "stats" and stats["lost"] == 0, stats
    assert len(writes) == BURST  # every send of the burst, none left in the buffer
    assert stats["events"] == len(lines) - 1
    delivered = stats["events"] + stats["dropped"] + stats["process_events"]
    assert delivered + stats["decode_errors"] == stats["kernel_events"], stats

"""An orderly stop loses nothing: what the programs output reaches the caller.

A burst of writes, then SIGINT at once: ``libtrace trace`` must print every
event that reached the buffer before it exits, and its stats must add up
(every event the programs output is delivered, dropped or counted as the
tracer's own; nothing vanishes between the kernel and the last line).
"""

from __future__ import annotations

import json
import select
import signal
import socket
import threading

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


def test_a_trace_that_loses_events_says_so_while_it_runs() -> None:
    """A 4 KiB buffer and a stream of small sends: the kernel outruns the reader,
    and the trace says so on stderr before it is stopped, with what would help."""
    client, server, port = _connected_pair()
    with client, server:
        proc = start_trace("--json", "--no-payload", "--buffer-size", "4096", "--port", str(port))
        assert proc.stdout is not None and proc.stderr is not None
        out: list[str] = []  # read as it comes: a full pipe would stall the trace
        reader = threading.Thread(target=lambda: out.extend(proc.stdout or ()), daemon=True)
        reader.start()
        warned = ""
        for _ in range(2000):  # each round a few ms of sends; the first warning comes in ~1 s
            for _ in range(200):
                client.send(b"x" * 64)
                server.recv(1 << 16)
            if select.select([proc.stderr], [], [], 0)[0]:
                warned = proc.stderr.readline()
                break
        proc.send_signal(signal.SIGINT)
        err = proc.stderr.read()
        proc.wait(timeout=120)
        reader.join(timeout=60)
    assert "events lost" in warned and "--buffer-size (now 4096)" in warned, warned + err
    lines = [json.loads(line) for line in out if line.strip()]
    assert lines[-1]["type"] == "stats" and lines[-1]["lost"] > 0
    assert all("data_b64" not in line for line in lines)  # --no-payload

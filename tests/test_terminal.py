"""The everyday output on an 80-column terminal: every column shows.

Each command runs in a pseudo-terminal of 80 columns and 24 rows (no
COLUMNS in its environment: the width comes from the terminal, as for a
user), and the test reads what the terminal was sent, escape sequences
stripped.  The event and record tables are plain lines, whole whatever the
width (the terminal wraps them); the check's table is drawn by rich to the
terminal's width, so it must fit in 80 columns without losing a count.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from libtrace.errors import ExitCode

from .records._live import redis_server
from .services.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "libtrace.cli"]
COLUMNS, ROWS = 80, 24
#: Escape sequences (colours, cursor moves) a program sends to a terminal.
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
#: A command that does not finish in this long has hung.
TIMEOUT_S = 300
TIME = r"\d\d:\d\d:\d\d\.\d{6}"


def in_terminal(argv: list[str], traffic: Callable[[], None] | None = None,
                settle_s: float = 0.5) -> tuple[int, str, str]:  # fmt: skip
    """Run ``argv`` on an 80x24 pseudo-terminal; with ``traffic``, call it once the
    command says it is tracing, wait ``settle_s``, then stop it with Ctrl-C (SIGINT).
    Returns the exit code, what the terminal showed (escape sequences and rewritten
    lines gone), and what it showed before the stop."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(TERM="xterm-256color", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT)
    os.close(slave)
    shown, stopped, before_stop = b"", traffic is None, b""
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            ready = select.select([master], [], [], 0.2)[0]
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the last writer closed the terminal
                    break
                shown += chunk
            if not stopped and b"tracing (" in shown:
                assert traffic is not None
                traffic()
                deadline_settle = time.monotonic() + settle_s  # the next poll prints it
                while time.monotonic() < deadline_settle:
                    if select.select([master], [], [], 0.05)[0]:
                        shown += os.read(master, 65536)
                before_stop = shown
                proc.send_signal(signal.SIGINT)
                stopped = True
            if not ready and proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    everything, before = (visible(sent.decode(errors="replace")) for sent in (shown, before_stop))
    return code, everything, before


def visible(sent: str) -> str:
    """What stays on the terminal of ``sent``: escape sequences go, and of a line
    that a carriage return rewrote (a progress spinner's), the last writing."""
    lines = ESCAPES.sub("", sent).split("\n")
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in lines)



def redis_ping_set_get(port: int) -> Callable[[], None]:
    """Real redis-cli traffic: a PING, a SET and a GET, each its own connection."""

    def run() -> None:
        for command in (["PING"], ["SET", "k", "v"], ["GET", "k"]):
            subprocess.run(["redis-cli", "-p", str(port), *command], check=True,
                           capture_output=True, timeout=30)  # fmt: skip

    return run


@pytest.mark.root
@pytest.mark.bpf
def test_trace_table_on_80_columns_shows_every_column_of_every_event() -> None:
    port = free_port()
    with redis_server(port):
        code, shown, _ = in_terminal([*CLI, "trace", "--no-go-tls", "--port", str(port)],
                                     redis_ping_set_get(port))  # fmt: skip
    assert code == 0, shown
    lines = shown.splitlines()
    header = next(line for line in lines if line.startswith("time "))
    assert header.split()[:8] == ["time", "pid", "comm", "fd", "call", "l4", "local", "→"], shown
    peer = r"127\.0\.0\.1:\d+"
    # time, pid, comm, fd, call, l4, local, arrow, remote, size, data: all there.
    row = re.compile(rf"^{TIME} +\d+ \S+ +\d+ \w+ +tcp {peer} [→←] {peer} +\d+B  \S")
    data = [line for line in lines if row.match(line)]
    sent = [line for line in data if "→" in line and "PING" in line]
    assert sent, shown  # redis-cli's PING, whole on its line
    assert len(data) >= 12, shown  # three commands: request and reply, each sent and received
    assert re.search(r"\d+ events, 0 lost", shown), shown


@pytest.mark.root
@pytest.mark.bpf
def test_trace_records_on_80_columns_shows_every_column_of_every_record() -> None:
    port = free_port()
    with redis_server(port):
        code, shown, _ = in_terminal(
            [*CLI, "trace", "--no-go-tls", "--records", "--port", str(port)],
            redis_ping_set_get(port),
        )
    assert code == 0, shown
    lines = shown.splitlines()
    header = next(line for line in lines if line.split()[:3] == ["pid", "comm", "side"])
    for column in ("time", "proto", "client", "server", "status", "latency", "request"):
        assert column in header.split(), header
    rows = [line for line in lines
            if re.match(rf"^ *\d+ \S+ +(client|server) +{TIME} +redis +\S+ -> \S+ +ok +"
                        r"[\d.]+ms  \S", line)]  # fmt: skip
    commands = sorted(line.split("ms  ", 1)[1].split()[0] for line in rows)
    # Each of the three commands, seen from the client and from the server.
    assert commands == ["GET", "GET", "PING", "PING", "SET", "SET"], shown
    assert "6 records" in shown, shown


@pytest.mark.root
@pytest.mark.bpf
def test_check_all_on_80_columns_keeps_every_count_column(tmp_path: Path) -> None:
    """The layout, whatever the verdicts: a scenario's agreement with the wire is
    tests/check's to assert (once here an http1 run differed, and the layout was
    right)."""
    code, shown, _ = in_terminal([*CLI, "check", "all", "--report", str(tmp_path)])
    assert code in (ExitCode.OK, ExitCode.FAILED), shown
    lines = shown.splitlines()
    assert all(len(line) <= COLUMNS for line in lines), [w for w in lines if len(w) > COLUMNS]
    headers = [line for line in lines if "┃" in line and "pcap" in line]
    verdicts = [line for line in lines if line.startswith("verdict: ")]
    assert len(headers) == len(verdicts) >= 8, shown  # a table per scenario
    for header in headers:
        assert "trace client" in header and "trace server" in header, header
    # Every body row keeps its three counts (pcap, client, server) and its mark.
    body = [line for line in lines if line.startswith("│")]
    assert body and all(re.search(r"│\s+\d+\s+│\s+\d+\s+│\s+\d+\s+│ [=≠] +│$", line)
                        for line in body), "\n".join(body)  # fmt: skip


@pytest.mark.root
@pytest.mark.bpf
def test_stat_redraws_its_table_on_the_terminal_while_it_traces() -> None:
    """Live, the table is drawn on the terminal before the trace ends (then the
    final table); every column fits in 80."""
    port = free_port()
    with redis_server(port):
        code, shown, before_stop = in_terminal(
            [*CLI, "stat", "--no-go-tls", "--interval", "0.2", "--port", str(port)],
            redis_ping_set_get(port), settle_s=2.0)
    assert code == 0, shown
    header = ["protocol", "key", "count", "rate/s", "errors", "p50", "ms", "p90", "p99", "max",
              "bytes"]  # fmt: skip
    assert any(line.split() == header for line in before_stop.splitlines()), before_stop
    # While tracing, each command already has its row (both ends traced: two each).
    live = {line.split()[1]: line.split()[2] for line in before_stop.splitlines()
            if line.startswith("redis ")}  # fmt: skip
    assert live == {"PING": "2", "SET": "2", "GET": "2"}, before_stop
    assert all(len(line) <= COLUMNS for line in shown.splitlines()), shown


def test_the_terminal_runner_sees_what_a_narrow_terminal_is_told() -> None:
    """The harness itself: a child on the pseudo-terminal reads 80 columns from it."""
    width = "import shutil; print(shutil.get_terminal_size().columns)"
    code, shown, _ = in_terminal([sys.executable, "-c", width])
    assert code == 0 and shown.split() == [str(COLUMNS)], shown
    # A spinner's rewritten line leaves its last writing; escape sequences go.
    assert visible("\x1b[2K⠋ working\r\x1b[2K⠙ working\r\x1b[2Kdone\r\nnext\r\n") == "done\nnext\n"

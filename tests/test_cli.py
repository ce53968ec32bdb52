"""The ``libtrace`` command's contracts: JSON lines, filters, stops, errors."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from libtrace.cli import COMMANDS, EXAMPLES, build_parser
from libtrace.errors import ExitCode

from .tracing import Peer, wait_until_tracing
from .waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent

CLI = [sys.executable, "-m", "libtrace.cli"]


def start_trace(*args: str, go_tls: bool = False) -> subprocess.Popen[str]:
    """Start ``libtrace trace`` and wait until its programs are attached.

    The Go TLS uprobes are off unless asked for: tests/golang covers them, and
    attached to every Go daemon of the machine (dockerd, containerd) they would
    cost each run here seconds at exit (the kernel frees a uprobe per RCU grace
    period).
    """
    proc = subprocess.Popen(
        [*CLI, "trace", *args, *([] if go_tls else ["--no-go-tls"])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    wait_until_tracing(proc.stderr)
    return proc


def stop_trace(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """SIGINT (the CLI drains its buffer and prints stats), then its output."""
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=30)


def kill_if_running(proc: subprocess.Popen[str]) -> None:
    """After a test that failed before stopping the tracer: no tracer is left behind."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def loopback_exchange() -> None:
    """A few bytes over a loopback TCP connection of this process (traced: not the tracer's)."""
    with (
        socket.create_server(("127.0.0.1", 0)) as listener,
        socket.create_connection(listener.getsockname()) as client,
    ):
        conn, _ = listener.accept()
        with conn:
            client.sendall(b"ping")
            conn.recv(4)


def first_output_line(proc: subprocess.Popen[str]) -> str:
    """Make traffic until the tracer prints a whole line: it is in its event loop.

    Read from the pipe's descriptor, so that communicate() goes on where this stopped;
    returns everything read (one line or more)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    head = b""

    def printed() -> bool:
        nonlocal head
        loopback_exchange()
        if select.select([fd], [], [], 0.2)[0]:
            chunk = os.read(fd, 65536)
            assert chunk, "the tracer closed its output before printing an event"
            head += chunk
        return b"\n" in head

    wait_for(printed, "an event printed by libtrace trace", 30)
    return head.decode()


@pytest.mark.root
@pytest.mark.bpf
def test_trace_json_with_pid_filter_shows_only_that_pid(peer_factory):
    traced = peer_factory("big", 44100, "1000")
    other = peer_factory("big", 44200, "1000")
    proc = start_trace("--json", "--pid", str(traced.pid))
    try:
        ledger = traced.run()
        other.run()
        out, err = stop_trace(proc)  # both peers are done: their events are in the buffer
    finally:
        kill_if_running(proc)
    assert proc.returncode == 0, err
    lines = json_lines(out)
    assert lines[-1]["type"] == "stats"
    assert lines[-1]["lost"] == 0
    data = [line for line in lines if line["type"] == "data"]
    assert data and {line["pid"] for line in data} == {traced.pid}
    assert lines[-1]["events"] == len(lines) - 1
    required = {
        "type",
        "pid",
        "tid",
        "comm",
        "fd",
        "direction",
        "l4",
        "family",
        "laddr",
        "lport",
        "raddr",
        "rport",
        "ts_ns",
        "offset",
        "size",
        "captured",
        "data_b64",
    }
    for line in data:
        assert required <= set(line)
        assert line["direction"] in ("egress", "ingress")
        assert line["l4"] == "tcp" and line["family"] == "ipv4"
    client = traced.layout["sockets"][0]
    sent = b"".join(
        base64.b64decode(line["data_b64"])
        for line in data
        if line["fd"] == client["fd"] and line["direction"] == "egress"
    )
    assert sent == bytes.fromhex(ledger["sent"][str(client["fd"])])


@pytest.mark.root
@pytest.mark.bpf
def test_trace_port_filter(peer_factory):
    wanted = peer_factory("big", 44300, "100")
    unwanted = peer_factory("big", 44400, "100")
    port = wanted.layout["sockets"][1]["lport"]
    proc = start_trace("--json", "--port", str(port))
    try:
        wanted.run()
        unwanted.run()
        out, _ = stop_trace(proc)  # both peers are done: their events are in the buffer
    finally:
        kill_if_running(proc)
    data = [line for line in json_lines(out) if line["type"] == "data"]
    assert data
    assert all(port in (line["lport"], line["rport"]) for line in data)
    assert {line["pid"] for line in data} == {wanted.pid}


@pytest.mark.root
@pytest.mark.bpf
@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGINT])
def test_trace_stops_cleanly_on_a_signal_and_prints_stats(signo):
    proc = start_trace("--json")
    try:
        head = first_output_line(proc)  # stopped while it streams events
        proc.send_signal(signo)
        out, err = proc.communicate(timeout=20)
    finally:
        kill_if_running(proc)
    assert proc.returncode == 0, err
    lines = json_lines(head + out)
    assert lines[0]["type"] != "stats" and lines[-1]["type"] == "stats"
    assert [line["type"] for line in lines].count("stats") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--payload-cap", "0"], "payload cap"),
        (["--payload-cap", "99999"], "payload cap"),
        (["--port", "70000"], "invalid port"),
        (["--force-compat", "perfbuf,bogus"], "unknown switch bogus"),
        (["--buffer-size", "5000"], "power of two"),
        (["--duration", "-1"], "must be positive"),
        (["--btf", "/nonexistent/btf"], "does not exist"),
        (["--protocol", "redis"], "--protocol acts only with --records"),
        (["--headers", "--no-redact"], "--headers, --no-redact act only with --records"),
        (["--no-payload"], "--no-payload acts only with --json"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args, message):
    proc = subprocess.run([*CLI, "trace", *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.root
@pytest.mark.bpf
def test_the_table_piped_is_one_line_per_event() -> None:
    """Piped, the table is not wrapped at 80 columns: every line is one event."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        proc = start_trace("--port", str(port))
        with socket.create_connection(("127.0.0.1", port)) as client:
            server, _ = listener.accept()
            with server:
                for _ in range(3):
                    client.sendall(b"a long enough payload to pass eighty columns " * 3)
                    server.recv(1 << 16)
        out, _ = stop_trace(proc)
    header, *lines = [line for line in out.splitlines() if line.strip()]
    assert header.split()[:6] == ["time", "pid", "comm", "fd", "call", "l4"], out
    data = [line for line in lines if "→" in line or "←" in line]
    assert len(data) == 6, out  # three sends and three receives
    # Each starts with the wall-clock time and a pid.
    assert all(re.match(r"^\d\d:\d\d:\d\d\.\d{6} +\d+ \S", line) for line in lines), out


@pytest.mark.parametrize("command", [["check", "redis", "--report"], ["matrix", "--report"]])
def test_a_report_path_that_is_a_file_is_one_line_and_exit_2(command, tmp_path):
    taken = tmp_path / "a-file"
    taken.write_text("mine\n")

    proc = subprocess.run([*CLI, *command, str(taken)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip

    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"libtrace: error: File exists: {taken}"]
    assert taken.read_text() == "mine\n"  # untouched


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")
def test_without_privileges_one_sentence_and_exit_1():
    # Root without capabilities (an empty bounding set): loading BPF must
    # fail with a sentence, not a traceback.
    proc = subprocess.run(
        ["setpriv", "--bounding-set=-all", "--inh-caps=-all", *CLI, "trace"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1, proc.stderr
    assert "root" in proc.stderr or "CAP_BPF" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


#: Test-only dependencies (the ``test`` extra): the command must start without them.
TEST_ONLY = ("pytest", "_pytest", "hypothesis", "testinfra", "paho", "kafka", "pymysql", "mysql",
             "yaml", "selenium")  # fmt: skip
#: The machinery only a subcommand's handler needs.
HEAVY = ("libtrace.tracer.tracer", "libtrace.parsers", "libtrace.pcap", "libtrace.matrix.sweep",
         "libtrace.vm.build", "dpkt", "elftools", "capstone", "dns", "rich")  # fmt: skip


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport sys\nprint(*sys.modules, sep='\\n')"
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    return set(proc.stdout.split())


def _main(*argv: str) -> str:
    return (
        "import contextlib, io, libtrace.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    libtrace.cli.main({list(argv)!r})"
    )


@pytest.mark.parametrize(
    "code, forbidden",
    [
        ("import libtrace", TEST_ONLY + HEAVY),
        ("import libtrace.cli", TEST_ONLY + HEAVY),
        (_main("--help"), TEST_ONLY + HEAVY),
        (_main("bogus"), TEST_ONLY + HEAVY),
        (_main("compat", "--help"), TEST_ONLY + HEAVY),
        (_main("vm", "run", "--help"), TEST_ONLY + HEAVY),
        (_main("pcap", "--help"), (*TEST_ONLY, "libtrace.tracer.tracer", "elftools", "rich")),
    ],
    ids=["import", "import-cli", "help", "bad-command", "compat-help", "vm-help", "pcap-help"],
)
def test_the_command_starts_without_test_dependencies_or_heavy_imports(code, forbidden):
    loaded = _modules_after(code)
    assert "libtrace" in loaded
    pulled = sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden))
    assert pulled == []


def test_the_parser_built_for_one_command_matches_the_full_one():
    import argparse

    from libtrace.cli import COMMANDS, build_parser

    def sub(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
        (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return action.choices[name]

    full = build_parser()
    # The summaries in COMMANDS are those of the add_* functions, in order.
    assert build_parser(only=()).format_help() == full.format_help()
    for name in COMMANDS:
        assert sub(build_parser(only=[name]), name).format_help() == sub(full, name).format_help()


def test_the_package_exports_resolve_on_first_use():
    import libtrace
    from libtrace import Tracer
    from libtrace.tracer.tracer import Tracer as TracerItself

    assert Tracer is TracerItself
    assert set(libtrace.__all__) == {*libtrace._EXPORTS, "__version__"}
    assert all(getattr(libtrace, name) is not None for name in libtrace.__all__)
    assert set(libtrace.__all__) <= set(dir(libtrace))
    with pytest.raises(AttributeError):
        _ = libtrace.NoSuchName


__all__ = ["Peer"]


def test_a_missing_clang_is_one_error_line_not_a_traceback(tmp_path: Path) -> None:
    """A source checkout compiles the BPF objects on first use: without clang the
    command says so in one line and exits 1."""
    env = {**os.environ, "PATH": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    code = "import sys; from libtrace.cli import main; sys.exit(main())"
    argv = [sys.executable, "-c", code, "compat", "--kernel", "5.10"]
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == [
        "libtrace: error: cannot build the BPF objects: clang not found: install clang "
        "(scripts/install-deps.sh)"]


def test_exit_codes_are_one_table() -> None:
    """``ExitCode`` is the one table of exit codes: no module defines its own numbers."""
    import re
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "libtrace"
    own = [f"{path.relative_to(package)}:{number}" for path in package.rglob("*.py")
           for number, line in enumerate(path.read_text().splitlines(), 1)
           if re.match(r"EXIT_[A-Z_]+(, EXIT_[A-Z_]+)* = \d+(, \d+)*\s*(#.*)?$", line)]  # fmt: skip
    assert own == []


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_commands_help_has_examples_that_parse_and_the_exit_codes(name: str) -> None:
    parser = build_parser(only=[name])
    command = parser._subparsers._group_actions[0].choices[name]  # type: ignore[union-attr]
    text = command.format_help()

    assert "examples:" in text and all(f"  {int(code):>3}  " in text for code in ExitCode)
    assert EXAMPLES[name]
    for example in EXAMPLES[name]:
        words = shlex.split(example, comments=True)
        words = words[: words.index(">")] if ">" in words else words
        assert words[0] == "libtrace"
        parser.parse_args(words[1:])  # an example that no longer parses exits 2 here

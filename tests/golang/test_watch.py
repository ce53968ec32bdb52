"""Go process watching: attach after the delay, detach on exit, never twice.

Real Go programs, real exec/exit tracepoints and real uprobes; the delay is
shortened for the tests.  "Attached" is checked two ways: the watcher's own
bookkeeping, and the kernel's — `bpftool perf` lists every uprobe this
process holds, by pid and file offset — plus whether TLS plaintext of the
program really arrives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from libtrace import Tracer
from libtrace.tracer import _uprobe_multi
from libtrace.tracer.golang import inspect_binary
from libtrace.tracer.golang.attach import UPROBE_PROGRAMS, probe_sites
from tests.golang.conftest import go_binary, go_versions
from tests.golang.test_tls_capture import go_server
from tests.tracing import drain

from ..tracing import running_kernel
from ..waiting import wait_for

pytestmark = [pytest.mark.root, pytest.mark.bpf, pytest.mark.go_toolchain]

DELAY = 2.0
#: The two kinds of uprobe links: uprobe_multi (6.6+, chosen here) and the
#: perf events of older kernels (forced).
LINKS = {"uprobe_multi": frozenset(), "perf_events": frozenset({"perf-uprobes"})}


@pytest.fixture(params=list(LINKS))
def links(request):
    """Each kind of uprobe link; uprobe_multi needs a kernel that has it (6.6+)."""
    if request.param == "uprobe_multi" and not _uprobe_multi.supported():
        pytest.skip("the kernel lacks uprobe_multi links (6.6+)")
    return request.param


@pytest.fixture(scope="module")
def server_binary():
    return go_binary("https_server", go_versions()[-1], stripped=False)


class Clock:
    """The watcher's clock, moved by the test: the delay passes when the test says,
    so what is checked "before the delay" is checked before it on any machine."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def on_test_clock(watcher) -> Clock:
    clock = Clock()
    watcher._clock = clock  # GoTlsWatcher(clock=...): the tracer builds it with the real one
    return clock


def attach_calls(watcher) -> list[int]:
    """Record the pids the watcher tries to attach to from now on."""
    calls: list[int] = []
    attach = watcher.attach

    def recorded(pid: int) -> bool:
        calls.append(pid)
        return attach(pid)

    watcher.attach = recorded
    return calls


def _legacy_uprobes() -> list[dict]:
    """Before 4.18 bpftool cannot ask which perf event is whose (no BPF_TASK_FD_QUERY),
    and before 4.17 (no uprobe PMU) libbpf makes each uprobe in tracefs's
    uprobe_events, named libbpf_<pid>_…: the kernel's list of them, ours only."""
    events = Path("/sys/kernel/tracing/uprobe_events")
    if not events.exists():
        events = Path("/sys/kernel/debug/tracing/uprobe_events")
    probes = []
    for line in events.read_text().splitlines():
        name, _, target = line.partition(" ")
        if f"libbpf_{os.getpid()}_" in name and ":0x" in target:
            probes.append({"offset": int(target.rsplit(":0x", 1)[1].split()[0], 16)})
    return probes


def my_uprobes() -> list[dict]:
    """Uprobes held by this process, as the kernel reports them: perf-event ones
    from `bpftool perf`; uprobe_multi links from their fdinfo, one entry per
    offset where the kernel lists them (6.13+), else one per link (6.12 says
    only the link type), with ``offset`` None."""
    done = subprocess.run(["bpftool", "--json", "perf", "show"], capture_output=True, text=True)
    if done.returncode != 0 and running_kernel() < (4, 18):
        return _legacy_uprobes()
    done.check_returncode()
    probes = [p for p in json.loads(done.stdout or "[]") if p.get("pid") == os.getpid()
              and p.get("fd_type") == "uprobe"]
    for info in Path("/proc/self/fdinfo").iterdir():
        try:
            text = info.read_text()
        except OSError:
            continue  # an fd closed meanwhile
        if "link_type:\tuprobe_multi" not in text:
            continue
        if "ref_ctr_offset" not in text:
            probes.append({"offset": None})
            continue
        table = text.split("ref_ctr_offset", 1)[1].split()
        probes += [{"offset": int(table[i], 16)} for i in range(1, len(table), 3)]
    return probes


def probes_on(binary) -> int:
    """How many of this process's uprobes sit on ``binary``'s TLS functions (a
    uprobe_multi link the kernel does not detail counts as one)."""
    inspected = inspect_binary(binary)
    offsets = {o for _, site in probe_sites(inspected) for o in site} | {None}
    return sum(1 for p in my_uprobes() if p.get("offset") in offsets)


def wait_until(tracer: Tracer, condition, timeout: float = 10.0) -> bool:
    """Poll the tracer (each poll ticks the watcher) until ``condition()``; False past the
    deadline.  The events polled meanwhile are dropped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tracer.poll(50)
        if condition():
            return True
    return False


def curl(port: int, *flags: str) -> None:
    subprocess.run(
        ["curl", "-sk", *flags, f"https://127.0.0.1:{port}/"], capture_output=True, timeout=20
    )


def tls_events_of(tracer: Tracer, pid: int) -> int:
    return sum(1 for e in drain(tracer) if e.tls and e.pid == pid)


#: A child's loopback exchange of argv[1] (the tracer leaves its own process out).
EXCHANGE = """
import socket, sys
with socket.create_server(("127.0.0.1", 0)) as listener:
    with socket.create_connection(listener.getsockname()) as client:
        conn, _ = listener.accept()
        client.sendall(sys.argv[1].encode())
        conn.recv(100)
        conn.close()
"""


def traces_new_traffic(tracer: Tracer) -> bool:
    """A child process sends a marker on loopback: the tracer delivers it."""
    marker = f"still tracing {os.getpid()}"
    child = subprocess.Popen([sys.executable, "-c", EXCHANGE, marker])
    assert child.wait(timeout=30) == 0
    return wait_for(
        lambda: any(e.pid == child.pid and e.data == marker.encode() for e in tracer.poll(50)),
        "the child's marker traced",
    )


@pytest.mark.capability("go_tls")
def test_a_program_started_later_is_attached_after_the_delay_and_detached_at_exit(
    server_binary, tmp_path, links
):
    with Tracer(go_attach_delay=DELAY, force_compat=LINKS[links]) as tracer:
        watcher = tracer.go_tls
        clock = on_test_clock(watcher)
        calls = attach_calls(watcher)
        assert watcher.multi is (links == "uprobe_multi")
        before = probes_on(server_binary)
        with go_server(server_binary, tmp_path / "keys") as server:
            assert wait_until(tracer, lambda: server.pid in watcher.pending, 3)
            # Due one delay after its exec was seen.
            assert watcher.pending[server.pid] == clock.now + DELAY
            # Before the delay: not attached, and its plaintext is not traced, though
            # the tracer polled (and ticked) all along; up to the instant it is due.
            curl(server.port)
            assert tls_events_of(tracer, server.pid) == 0
            clock.now += DELAY - 0.001
            tracer.poll(10)
            assert server.pid in watcher.pending and server.pid not in watcher.attached
            assert server.pid not in calls
            assert probes_on(server_binary) == before
            # After the delay: attached on the next tick, in the kernel too, and traced.
            clock.now += 0.001
            assert wait_until(tracer, lambda: server.pid in watcher.attached, 5)
            assert server.pid not in watcher.pending and calls.count(server.pid) == 1
            assert probes_on(server_binary) > before
            curl(server.port)
            assert tls_events_of(tracer, server.pid) > 0
        # The server was killed: the exit event detaches it.
        assert wait_until(tracer, lambda: server.pid not in watcher.attached, 5)
        assert watcher.stats.detached >= 1
        # The kernel frees uprobes one RCU grace period apiece.
        wait_for(lambda: probes_on(server_binary) == before, "the uprobes freed", 20)


@pytest.mark.capability("go_tls")
def test_a_program_that_exits_before_the_delay_is_never_attached(server_binary, tmp_path):
    with Tracer(go_attach_delay=DELAY) as tracer:
        watcher = tracer.go_tls
        clock = on_test_clock(watcher)
        calls = attach_calls(watcher)
        with go_server(server_binary, tmp_path / "keys") as server:
            assert wait_until(tracer, lambda: server.pid in watcher.pending, 3)
        # Killed inside the delay (its clock has not moved): the exit cancels the attach.
        assert wait_until(tracer, lambda: server.pid not in watcher.pending, 3)
        clock.now += 2 * DELAY
        tracer.poll(10)  # a tick well past the delay: nothing is due for it
        assert server.pid not in watcher.attached
        assert server.pid not in calls


@pytest.mark.capability("go_tls")
def test_programs_running_at_start_are_attached_at_once_and_never_twice(
    server_binary, tmp_path, links
):
    with (
        go_server(server_binary, tmp_path / "keys") as server,
        Tracer(go_attach_delay=DELAY, force_compat=LINKS[links]) as tracer,
    ):
        watcher = tracer.go_tls
        assert server.pid in watcher.attached
        probes = probes_on(server_binary)
        assert probes > 0
        assert watcher.attach(server.pid) is True
        assert probes_on(server_binary) == probes  # no second set of probes
        curl(server.port)
        assert tls_events_of(tracer, server.pid) > 0


def test_a_program_gone_before_its_attach_is_counted_and_skipped(server_binary, tmp_path):
    with Tracer(go_attach_delay=DELAY) as tracer:
        watcher = tracer.go_tls
        with go_server(server_binary, tmp_path / "keys") as server:
            pid = server.pid
            os.kill(pid, signal.SIGKILL)
            server.wait()
        vanished = watcher.stats.vanished
        assert watcher.attach(pid) is False  # no exception: it is gone
        assert watcher.stats.vanished == vanished + 1
        assert pid not in watcher.attached
        assert traces_new_traffic(tracer)  # the tracer goes on


def test_no_go_tls_attaches_nothing(server_binary, tmp_path):
    with go_server(server_binary, tmp_path / "keys") as server, Tracer(go_tls=False) as tracer:
        assert tracer.go_tls is None
        assert my_uprobes() == []
        curl(server.port)
        events = drain(tracer)
    assert not any(e.tls for e in events)
    assert any(e.pid == server.pid for e in events)  # its ciphertext is still traced


def test_sigkill_of_the_tracer_leaves_no_go_tls_program(server_binary, tmp_path):
    """The uprobes and their programs die with the tracer, even on SIGKILL."""
    from tests.test_cli import start_trace
    from tests.tracer.test_cleanup import show

    def go_programs() -> set[int]:
        return {p["id"] for p in show("prog") if p.get("name", "").startswith("lt_go_tls")}

    before = go_programs()
    with go_server(server_binary, tmp_path / "keys") as server:
        proc = start_trace("--json", "--pid", str(server.pid), go_tls=True)
        try:
            mine = go_programs() - before
            # read entry, its copy and its return (loaded both ways), record write
            assert len(mine) == len(UPROBE_PROGRAMS) == 4
            curl(server.port)
        finally:  # a failed assertion must not leave the tracer running
            proc.kill()
            proc.communicate(timeout=60)
    # The kernel frees the programs once their last reference (a uprobe) is gone.
    wait_for(lambda: not go_programs() & mine, "the Go TLS programs freed", 30)


def test_a_program_that_exits_in_the_middle_of_attaching_is_survived(server_binary, tmp_path):
    """The program is killed after its binary was inspected and before the uprobes
    go on: the kernel refuses them (its /proc/PID/exe is gone); nothing is left."""
    with Tracer(go_attach_delay=DELAY) as tracer:
        watcher = tracer.go_tls
        with go_server(server_binary, tmp_path / "keys") as server:
            pid = server.pid
            inspect = watcher._binary

            def inspect_then_exit(target: int):
                binary = inspect(target)
                os.kill(target, signal.SIGKILL)
                server.wait()  # reaped: /proc/PID is gone
                return binary

            watcher._binary = inspect_then_exit  # type: ignore[method-assign]
            vanished = watcher.stats.vanished
            before = probes_on(server_binary)  # not attached yet: its delay has not passed
            assert watcher.attach(pid) is False
        assert watcher.stats.vanished == vanished + 1
        assert pid not in watcher.attached
        assert tracer.go_tls._procs.lookup(pid.to_bytes(4, "little")) is None
        # Whatever went on before the refusal is taken off again (perf-event links
        # by the watcher's reaper thread, one RCU grace period apiece).
        wait_for(lambda: probes_on(server_binary) == before, "the partial attach undone", 20)


@pytest.mark.parametrize("variant", ["native", "perfbuf", "probe-read", "no-btf", "oldest"])
def test_every_object_variant_delivers_go_tls_plaintext_with_its_socket(
    variant, server_binary, tmp_path
):
    """The uprobes ride in every object variant: plaintext and the socket's
    ports arrive through the perf buffer, bpf_probe_read and the no-BTF
    identity (completed from /proc) too."""
    from tests.tracer.test_capture import VARIANTS

    with (
        go_server(server_binary, tmp_path / "keys") as server,
        Tracer(pids=(server.pid,), force_compat=VARIANTS[variant]) as tracer,
    ):
        assert server.pid in tracer.go_tls.attached
        curl(server.port, "--http1.1")
        events = [e for e in drain(tracer) if e.tls]
    ingress = b"".join(e.data for e in events if e.direction.name == "INGRESS")
    egress = b"".join(e.data for e in events if e.direction.name == "EGRESS")
    assert ingress.startswith(b"GET / HTTP/")
    assert b"hello HTTP/" in egress
    assert {(e.lport, e.l4, e.family) for e in events} == {(server.port, "tcp", "ipv4")}

"""Nothing of libtrace stays in the kernel once the tracer is gone.

Checked with bpftool (an independent view of the kernel's BPF objects) after
a normal end, SIGTERM, and SIGKILL, which gives the tracer no chance to clean
up: nothing is pinned, so the kernel frees everything with the last fd.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from ..test_cli import start_trace
from ..tracing import running_kernel

pytestmark = [pytest.mark.root, pytest.mark.bpf, pytest.mark.capability("cleanup")]
#: Every program in socket_trace.bpf.c is named lt_enter_* or lt_exit_*.
PROGRAM_PREFIX = "lt_e"


def show(kind: str) -> list[dict]:
    done = subprocess.run(["bpftool", "-j", kind, "show"], capture_output=True, text=True)
    if done.returncode != 0 and kind == "link" and running_kernel() < (5, 7):
        # Kernels before 5.7 have no BPF links to list (bpftool's query fails);
        # their tracepoint attachments are perf events, checked through the programs.
        return []
    done.check_returncode()
    return json.loads(done.stdout or "[]")


def libtrace_programs() -> dict[int, dict]:
    """Programs that look like libtrace's: named lt_e*; before 4.15 programs have no
    names, so every tracepoint program (callers judge only those that appear)."""
    unnamed = running_kernel() < (4, 15)
    return {p["id"]: p for p in show("prog")
            if p.get("name", "").startswith(PROGRAM_PREFIX)
            or (unnamed and not p.get("name") and p.get("type") == "tracepoint")}  # fmt: skip


def remaining(progs: set[int], maps: set[int]) -> tuple[set[int], set[int], set[int]]:
    """Which of these programs and maps, and links to the programs, still exist."""
    links = {link["id"] for link in show("link") if link.get("prog_id") in progs}
    return (progs & set(libtrace_programs()), links, maps & {m["id"] for m in show("map")})


@pytest.mark.parametrize("how", ["duration", "sigterm", "sigkill"])
def test_no_program_link_or_map_remains(how):
    # Other tracers may run at the same time (a parallel test run): judge
    # only the objects that appeared with this one.
    before = set(libtrace_programs())
    args = ["--json", "--duration", "2"] if how == "duration" else ["--json"]
    proc = start_trace(*args)
    try:
        during = libtrace_programs()
        progs = set(during) - before
        maps = {m for pid in progs for m in during[pid].get("map_ids", [])}
        _, links, _ = remaining(progs, maps)
        # Loaded for real (before 4.15 programs do not list their maps): at the
        # fewest, one exit per data syscall (10), connect, accept, accept4 and
        # close (8) and the fd syscalls' and Go TLS programs (26 on 5.4).
        assert len(progs) >= 20 and (maps or running_kernel() < (4, 15))
        # Before 5.15 libbpf attaches tracepoints with perf-event ioctls, which
        # are not BPF links; from 5.15 every program has one.
        assert len(links) in (0, len(progs))
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        elif how == "sigkill":
            proc.kill()
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # a failed assertion must not leave a tracer attached
            proc.kill()
            proc.wait()
    assert proc.returncode == (-signal.SIGKILL if how == "sigkill" else 0)
    # The kernel frees programs after an RCU grace period: poll briefly.
    deadline = time.monotonic() + 10
    while any(left := remaining(progs, maps)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left == (set(), set(), set())

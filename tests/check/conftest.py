"""Helpers of the differential-check tests: the CLI as a child, and what it may leave behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from libtrace.services import SERVICES

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "libtrace.cli", "check"]
#: A scenario takes about 5 s; this only stops a hung one.
CHECK_TIMEOUT_S = 300
#: The scenarios whose server is a Debian package (the Docker backend's images install it).
DEBIAN_SCENARIOS = [name for name, service in SERVICES.items() if service.package]


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``libtrace check ARGS`` in a child process of this checkout."""
    path = os.environ.get("PYTHONPATH")
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=ROOT,
                          env=child_env, timeout=CHECK_TIMEOUT_S, check=False)  # fmt: skip


def report_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The JSON ``--json`` printed (fails with stderr when there is none)."""
    assert done.stdout.strip(), done.stderr
    return dict(json.loads(done.stdout))


def needs(name: str) -> pytest.MarkDecorator:
    """Skip unless this host has tcpdump and the scenario's server and clients."""
    service = SERVICES[name]
    programs = ("tcpdump", service.program, *service.clients)
    missing = [p for p in programs if shutil.which(p) is None and not Path(p).is_file()]
    return pytest.mark.skipif(bool(missing), reason=f"needs {' '.join(missing)}")


def needs_docker() -> pytest.MarkDecorator:
    missing = [p for p in ("dockerd", "debootstrap", "tcpdump") if shutil.which(p) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {' '.join(missing)}")


def bpf_programs_held(pid: int) -> set[int]:
    """Ids of the BPF programs whose fds process ``pid`` holds (from its fdinfo)."""
    ids = set()
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            text = info.read_text()
        except OSError:
            continue  # the fd closed meanwhile
        ids.update(int(line.split()[1]) for line in text.splitlines()
                   if line.startswith("prog_id:"))  # fmt: skip
    return ids


def bpf_programs_alive(ids: set[int], timeout: float = 10.0) -> set[int]:
    """Which of these programs the kernel still has (bpftool's view), after a grace period.

    The kernel frees a program after an RCU grace period: poll briefly.
    """
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
                             check=True).stdout  # fmt: skip
        alive = ids & {prog["id"] for prog in json.loads(out or "[]")}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def containers_mentioning(text: str) -> list[str]:
    """Ids of libtrace's containers (running or not) whose command contains ``text``."""
    out = subprocess.run(
        ["docker", "ps", "-a", "--no-trunc", "--filter", "label=libtrace=1",
         "--format", "{{.ID}} {{.Command}}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [line.split()[0] for line in out.splitlines() if text in line]


def processes_mentioning(text: str) -> list[int]:
    """Pids (not this one) whose command line contains ``text``: servers, tcpdump."""
    out = subprocess.run(["pgrep", "-f", text], capture_output=True, text=True).stdout
    return [pid for pid in map(int, out.split()) if pid != os.getpid()]

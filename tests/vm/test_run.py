"""Real boots under QEMU: every verdict, from the host's root filesystem over 9p."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from libtrace.errors import VmError
from libtrace.vm import Kernel, Verdict, resolve, run
from libtrace.vm import qemu as qemu_module

from ..waiting import wait_for
from .test_initramfs import filtered_modules

REPO = Path(__file__).resolve().parents[2]

qemu = pytest.mark.qemu


def qemu_kills(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record every kill of QEMU (at the deadline, or after the exit's grace period)."""
    kills: list[int] = []
    kill = qemu_module._kill

    def recorded(proc: Any) -> None:
        kills.append(proc.pid)
        kill(proc)

    monkeypatch.setattr(qemu_module, "_kill", recorded)
    return kills


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@qemu
def test_a_command_runs_in_debian_6_1_and_returns_results(
    tmp_path: Path, kernel_61: Kernel
) -> None:
    results = tmp_path / "results"
    log = tmp_path / "console.log"
    command = (
        "cat /proc/version; python3 -c 'print(1+1)'\n"
        'echo "$FOO" > "$LIBTRACE_RESULTS/foo"; pwd > "$LIBTRACE_RESULTS/pwd"\n'
        'uname -r > "$LIBTRACE_RESULTS/uname"; echo "$HOME" > "$LIBTRACE_RESULTS/home"\n'
        "python3 -c 'import libtrace, sys; print(sys.executable)' > \"$LIBTRACE_RESULTS/py\"\n"
        "touch /usr/libtrace-overlay-probe && ls /sys/kernel/tracing/events >/dev/null\n"
        "mountpoint -q /sys/fs/bpf && ip -o link show lo | grep -q UP\n"
    )
    result = run(
        kernel_61,
        command,
        timeout_s=120,
        cwd=str(REPO),
        env={"FOO": "bar baz"},
        console_log=log,
        results_dir=results,
    )
    assert result.verdict is Verdict.PASS, result
    assert result.exit_code == 0 and result.reason == "exit code 0" and result.splats == ()
    assert result.boot_s is not None  # the init's first line was seen
    # In the console: the init's first line, the payload's start, its output, its exit.
    console = [line.strip() for line in log.read_text().splitlines()]
    marks = ["LIBTRACE-BOOTED", "LIBTRACE-START", "2", "LIBTRACE-EXIT: 0"]
    at = [console.index(mark) for mark in marks]
    assert at == sorted(at), dict(zip(marks, at, strict=True))
    lines = result.log_tail.splitlines()
    assert any(line.startswith("Linux version 6.1.") for line in lines)
    assert "2" in lines
    assert "LIBTRACE-EXIT: 0" in log.read_text()
    assert (results / "exit_code").read_text() == "0\n"
    assert (results / "foo").read_text() == "bar baz\n"
    assert (results / "pwd").read_text() == f"{REPO}\n"
    assert (results / "uname").read_text() == f"{kernel_61.release}\n"
    assert (results / "home").read_text() == "/root\n"
    # python3 on the guest's PATH is this environment's (python or python3).
    assert Path((results / "py").read_text().strip()).parent == Path(sys.executable).parent
    assert not Path("/usr/libtrace-overlay-probe").exists(), "the host root must stay read-only"


@qemu
def test_a_nonzero_exit_is_a_failure_with_its_code(kernel_61: Kernel) -> None:
    result = run(kernel_61, "echo about to fail; exit 3", timeout_s=120)
    assert result.verdict is Verdict.FAIL
    assert result.exit_code == 3 and result.reason == "exit code 3"
    assert "about to fail" in result.log_tail


@qemu
def test_a_kernel_splat_turns_a_pass_into_a_failure(kernel_61: Kernel) -> None:
    # The line goes through the kernel log to the console exactly as a WARN's would.
    command = "echo '<4>WARNING: CPU: 0 PID: 1 at libtrace/test.c:1 probe+0x0/0x10' > /dev/kmsg"
    result = run(kernel_61, command, timeout_s=120)
    assert result.verdict is Verdict.FAIL and result.exit_code == 0
    assert "WARNING: CPU: 0 PID: 1 at libtrace/test.c:1" in result.reason
    assert result.splats[0].startswith("WARNING: CPU: 0 PID: 1 at libtrace/test.c:1")


@qemu
def test_a_crashing_kernel_is_a_panic(kernel_61: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    kills = qemu_kills(monkeypatch)
    result = run(kernel_61, "echo c > /proc/sysrq-trigger; sleep 60", timeout_s=120)
    assert result.verdict is Verdict.PANIC, result
    assert result.exit_code is None
    assert result.reason.startswith("Kernel panic - not syncing")
    # The panic ended the run: QEMU exited by itself (panic=-1, -no-reboot), not killed
    # at the deadline, and the payload's sleep never ended.
    assert kills == []


@qemu
def test_a_broken_init_command_line_is_a_panic(kernel_61: Kernel) -> None:
    result = run(kernel_61, "true", timeout_s=120, append="rdinit=/nonexistent")
    assert result.verdict is Verdict.PANIC
    assert "Unable to mount root fs" in result.reason
    assert result.boot_s is None


@qemu
def test_a_hung_payload_times_out(kernel_61: Kernel, monkeypatch: pytest.MonkeyPatch) -> None:
    kills = qemu_kills(monkeypatch)
    result = run(kernel_61, "sleep 1000", timeout_s=20)
    assert result.verdict is Verdict.TIMEOUT
    assert result.exit_code is None
    assert result.reason == "timed out after 20 s while the payload ran"
    assert len(kills) == 1  # the deadline killed QEMU, once
    assert result.wall_s >= 20  # not before the deadline (a lower bound holds at any speed)


@qemu
def test_a_kernel_missing_9p_is_an_error_before_boot(
    tmp_path: Path, kernel_61: Kernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kernel_61.modules is not None
    broken = dataclasses.replace(
        kernel_61, modules=filtered_modules(kernel_61.modules, tmp_path / "mods", "9p")
    )
    guests: list[object] = []
    monkeypatch.setattr(qemu_module, "_run_guest", lambda *args: guests.append(args))
    result = run(broken, "true", timeout_s=60)
    assert result.verdict is Verdict.ERROR
    assert result.reason.startswith("missing module 9p")
    assert result.boot_s is None and guests == []  # found before QEMU was started


@qemu
def test_an_image_qemu_cannot_load_is_an_error(tmp_path: Path) -> None:
    junk = tmp_path / "vmlinuz-0.0.0"
    junk.write_bytes(os.urandom(1 << 16))
    kernel = Kernel(
        name="junk",
        release="0.0.0",
        version="0.0.0",
        source=f"vmlinuz:{junk}",
        vmlinuz=junk,
        modules=None,
    )
    result = run(kernel, "true", timeout_s=30)
    assert result.verdict is Verdict.ERROR
    assert result.reason.startswith(("QEMU failed", "the kernel never reached the init"))


@qemu
@pytest.mark.parametrize("name", ["debian-5.10", "debian-6.1", "debian-6.12"])
def test_boot_time_per_kernel(
    name: str, catalog_kernel: Callable[[str], Kernel], record_property: Callable[..., None]
) -> None:
    kernel = catalog_kernel(name)
    result = run(kernel, "python3 -c 'import platform; print(platform.release())'", timeout_s=120)
    assert result.verdict is Verdict.PASS, result
    assert kernel.release in result.log_tail.splitlines()
    assert result.boot_s is not None
    record_property("boot_s", round(result.boot_s, 2))
    record_property("wall_s", round(result.wall_s, 2))
    print(f"\n{name}: boot {result.boot_s:.2f} s, python payload done at {result.wall_s:.2f} s")


def test_the_host_kernel_runs_the_command_directly(tmp_path: Path) -> None:
    host = resolve("host")
    result = run(
        host,
        'echo "$FOO" > "$LIBTRACE_RESULTS/foo"; pwd; exit 4',
        cwd=str(tmp_path),
        env={"FOO": "x"},
        results_dir=tmp_path / "r",
    )
    assert result.verdict is Verdict.FAIL and result.exit_code == 4
    assert result.boot_s == 0 and result.splats == ()
    assert str(tmp_path) in result.log_tail.splitlines()
    assert (tmp_path / "r" / "foo").read_text() == "x\n"
    assert (tmp_path / "r" / "exit_code").read_text() == "4\n"
    assert run(host, "true").verdict is Verdict.PASS


def test_a_hung_host_command_times_out(tmp_path: Path) -> None:
    command = 'sleep 100 & echo $! > "$LIBTRACE_RESULTS/pid"; wait'
    result = run(resolve("host"), command, timeout_s=1, results_dir=tmp_path)
    assert result.verdict is Verdict.TIMEOUT and result.exit_code is None
    assert result.reason == "timed out after 1 s"
    # Killed, its children too (the process group), rather than waited for.
    sleeper = int((tmp_path / "pid").read_text())
    wait_for(lambda: not alive(sleeper), f"the payload's sleep (pid {sleeper}) killed")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"command": "  "}, "empty"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"memory_mb": 16}, "memory_mb"),
        ({"env": {"NOT-A-NAME": "x"}}, "not a valid environment variable"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"command": "true", **kwargs}
    command = arguments.pop("command")
    with pytest.raises(VmError, match=message):
        run(resolve("host"), command, **arguments)  # type: ignore[arg-type]


@qemu
def test_a_guest_that_cannot_reach_the_host_root_reports_why(kernel_61: Kernel) -> None:
    # Without its modules the Debian kernel has no virtio-pci or 9p: /init's mount fails.
    result = run(dataclasses.replace(kernel_61, modules=None), "true", timeout_s=90)
    assert result.verdict is Verdict.ERROR
    assert result.reason == "guest set-up failed: cannot mount the host root over 9p"
    assert result.boot_s is not None

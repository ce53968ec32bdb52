"""The console watcher: sentinels, panics and splats, from recorded console text."""

from __future__ import annotations

from libtrace.vm._console import ConsoleWatcher

WARN_SPLAT = """\
[    5.100000] ------------[ cut here ]------------
[    5.100001] WARNING: CPU: 0 PID: 117 at kernel/bpf/verifier.c:1234 check_x+0x10/0x20
[    5.100002] Modules linked in: overlay 9p netfs 9pnet_virtio
[    5.100003] CPU: 0 PID: 117 Comm: python3 Not tainted 6.1.0-56-amd64 #1  Debian 6.1.192-2
[    5.100004] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996)
[    5.100005] RIP: 0010:check_x+0x10/0x20
[    5.100006] RSP: 0018:ffffb1c0c01b7d38 EFLAGS: 00010246
[    5.100007] Call Trace:
[    5.100008]  <TASK>
[    5.100009]  bpf_check+0x1f2/0x2a0
[    5.100010]  ? __sys_bpf+0x5d/0x2c0
[    5.100011]  </TASK>
[    5.100012] ---[ end trace 0000000000000000 ]---
[    5.200000] reboot: Restarting system"""


def feed(text: str, watcher: ConsoleWatcher | None = None, t: float = 1.0) -> ConsoleWatcher:
    watcher = watcher or ConsoleWatcher(start=0.0)
    for line in text.splitlines():
        watcher.feed(line, t)
    return watcher


def test_sentinels_give_boot_time_and_exit_code() -> None:
    watcher = ConsoleWatcher(start=10.0)
    watcher.feed("[    0.000000] Linux version 6.1.0", 11.0)
    assert watcher.boot_s is None and not watcher.finished
    watcher.feed("LIBTRACE-BOOTED\r", 12.5)
    watcher.feed("LIBTRACE-START", 13.0)
    watcher.feed("hello", 13.1)
    watcher.feed("LIBTRACE-EXIT: 3", 14.0)
    assert watcher.boot_s == 2.5
    assert watcher.payload_started and watcher.exit_code == 3 and watcher.finished
    assert list(watcher.tail)[-2:] == ["hello", "LIBTRACE-EXIT: 3"]


def test_a_setup_error_is_reported() -> None:
    watcher = feed("LIBTRACE-BOOTED\nLIBTRACE-ERROR: cannot mount the host root over 9p")
    assert watcher.error == "cannot mount the host root over 9p" and watcher.finished


def test_a_warning_splat_is_kept_with_its_trace_and_nothing_after() -> None:
    watcher = feed(WARN_SPLAT)
    assert watcher.splat_heads == [
        "WARNING: CPU: 0 PID: 117 at kernel/bpf/verifier.c:1234 check_x+0x10/0x20"
    ]
    assert watcher.splats[0].startswith("WARNING:")
    assert " bpf_check+0x1f2/0x2a0" in watcher.splats
    assert watcher.splats[-1].startswith("---[ end trace")
    assert not any("reboot" in line for line in watcher.splats)
    assert len(watcher.splats) == 12


def test_payload_output_that_looks_like_a_splat_is_not_one() -> None:
    watcher = feed("WARNING: this is Python talking\nBUG: in the payload\nCall Trace:")
    assert watcher.splats == [] and watcher.splat_heads == []


def test_every_kind_of_splat_is_recognised() -> None:
    lines = [
        "BUG: kernel NULL pointer dereference, address: 0000000000000000",
        "Oops: 0002 [#1] PREEMPT SMP NOPTI",
        "watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [sh:117]",
        "INFO: task python3:120 blocked for more than 120 seconds.",
        "rcu: INFO: rcu_preempt self-detected stall on CPU",
        "rcu: INFO: rcu_sched detected stalls on CPUs/tasks:",
    ]
    for line in lines:
        watcher = feed(f"[   9.000000] {line}\n[   9.100000] NET: Registered PF_INET6")
        assert watcher.splat_heads == [line], line


def test_a_panic_gives_the_reason_and_the_oops_before_it() -> None:
    watcher = feed(
        "[    3.0] sysrq: Trigger a crash\n"
        "[    3.1] BUG: kernel NULL pointer dereference, address: 0000000000000000\n"
        "[    3.2] Kernel panic - not syncing: Fatal exception\n"
        "[    3.3] Kernel Offset: disabled\n"
    )
    assert watcher.panic[0] == "Kernel panic - not syncing: Fatal exception"
    assert watcher.finished
    assert watcher.panic_reason() == (
        "Kernel panic - not syncing: Fatal exception "
        "(after: BUG: kernel NULL pointer dereference, address: 0000000000000000)"
    )


def test_the_tail_is_bounded() -> None:
    watcher = feed("\n".join(f"line {i}" for i in range(1000)))
    assert len(watcher.tail) == 60 and watcher.tail[-1] == "line 999"


def test_a_kernel_refusing_its_own_btf_is_noticed() -> None:
    watcher = feed(
        "[    0.912000] BPF:[1] ENUM (anon)\n"
        "[    0.912001] BPF:Invalid btf_info kind_flag\n"
        "[    0.912002] failed to validate module [vmlinux] BTF: -22\n"
        "BPF:Invalid output of a payload, not the kernel"
    )
    assert watcher.btf_broken == [
        "BPF:Invalid btf_info kind_flag", "failed to validate module [vmlinux] BTF: -22"
    ]
    assert feed(WARN_SPLAT).btf_broken == []

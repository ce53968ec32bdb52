"""A synthetic matrix report: every kind of row, no VM booted.

One kernel passes everything (as predicted), one fails a cell (a verifier's
no, with its log), one panics half way, and one was only predicted.  The
page's browser test, the compare test and the README's screenshot use it.
"""

from __future__ import annotations

from libtrace.matrix.capabilities import capabilities
from libtrace.matrix.report import Cell, CellVerdict, KernelRow, Report

VARIANT = "ringbuf+probe-read-user+btf"
#: The failing cell, and what its details must show.
FAILING = ("debian-5.10", "attach")
FAILING_LOG = (
    "tests/tracer/test_capture.py:88: in test_attach\n"
    "    tracer.start()\n"
    "E   libtrace.errors.BpfError: load BPF object tracer failed: Permission denied "
    "(program on_sendmsg: 12: (61) r1 = *(u32 *)(r2 +0) | R2 invalid mem access 'scalar')\n"
    "--- Captured stderr call ---\n"
    "libbpf: prog 'on_sendmsg': failed to load: -13"
)
FAILING_VERIFIER = (
    "load BPF object tracer failed: Permission denied "
    "(program on_sendmsg: 12: (61) r1 = *(u32 *)(r2 +0) | R2 invalid mem access 'scalar')"
)
PANIC_CONSOLE = (
    "[   41.201] BUG: kernel NULL pointer dereference, address: 0000000000000008\n"
    "[   41.202] RIP: 0010:tcp_sendmsg_locked+0x5c/0xd10\n"
    "[   41.230] Kernel panic - not syncing: Fatal exception in interrupt"
)


def _predicted(loads: bool = True, variant: str = VARIANT) -> dict[str, object]:
    return {"variant": variant, "loads": loads, "reasons": [], "notes": [], "programs": {}}


def sample_report() -> Report:
    names = [c.name for c in capabilities()]
    report = Report()
    report.add(KernelRow(
        name="host", version="6.12.48", source="host", available=True, boot_s=0.0, wall_s=212.0,
        cells={n: Cell(CellVerdict.PASS, "4 passed", 9.5) for n in names},
        variant=VARIANT, predicted=_predicted(), note="6.12.48-amd64: pass",
    ))  # fmt: skip
    failing = {n: Cell(CellVerdict.PASS, "3 passed", 12.25) for n in names}
    failing["attach"] = Cell(CellVerdict.FAIL, "1 failed: test_attach: BpfError: load BPF object "
                             "tracer failed: Permission denied", 3.75, FAILING_LOG,
                             FAILING_VERIFIER)  # fmt: skip
    failing["go_tls"] = Cell(CellVerdict.SKIP, "the kernel has no uprobe_multi link", 0.5)
    report.add(KernelRow(
        name="debian-5.10", version="5.10.237", source="debian:bullseye", available=True,
        boot_s=6.1, wall_s=388.0, cells=failing, variant=VARIANT, predicted=_predicted(),
        note="5.10.0-35-amd64: fail (exit code 1)",
        log_tail="[  380.1] reboot: Power down\npytest: 1 failed, 80 passed",
    ))  # fmt: skip
    half = len(names) // 2
    panicking = {n: Cell(CellVerdict.PASS, "2 passed", 8.0) for n in names[:half]}
    panicking |= {n: Cell(CellVerdict.PANIC, "Kernel panic - not syncing") for n in names[half:]}
    report.add(KernelRow(
        name="debian-6.1", version="6.1.150", source="debian:bookworm", available=True,
        boot_s=5.4, wall_s=301.0, cells=panicking, variant=VARIANT, predicted=_predicted(),
        note="6.1.0-40-amd64: panic (Kernel panic - not syncing: Fatal exception in interrupt)",
        log_tail=PANIC_CONSOLE,
    ))  # fmt: skip
    report.add(KernelRow(
        name="4.19", version="4.19", source="seed (not available here)", available=False,
        cells={n: Cell(CellVerdict.NOT_AVAILABLE, "no kernel of this series can be had here")
               for n in names},
        note="4.19: predicted to load the perfbuf+probe-read+no-btf object",
        predicted=_predicted(variant="perfbuf+probe-read+no-btf"),
    ))  # fmt: skip
    return report

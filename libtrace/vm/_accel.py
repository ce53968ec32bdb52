"""Pick the accelerator: KVM only when a trial boot under it really completes.

On some hosts ``/dev/kvm`` exists and QEMU still hangs, or aborts on
``-cpu host`` (measured here: it fails to set MSR 0x10a), so access to the
device proves nothing.  :func:`kvm_works` boots a three-instruction boot
sector with the very CPU flags a real run would use, once per process;
``$LIBTRACE_VM_ACCEL`` skips the trial.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from ..errors import VmError

#: The QEMU binary (package qemu-system-x86).
QEMU = "qemu-system-x86_64"

#: Overrides the accelerator choice ("kvm" or "tcg"), skipping the KVM trial boot.
ACCEL_ENV = "LIBTRACE_VM_ACCEL"


def accel_args(accel: str) -> list[str]:
    """``-accel`` and ``-cpu`` for ``accel``."""
    # KVM guests get the host's CPU; TCG emulates every feature it can ("max"), so
    # host binaries built for newer CPUs run.  The KVM trial boot uses the same flags.
    return ["-accel", accel, "-cpu", "host" if accel == "kvm" else "max"]


# A boot sector that writes 1 to the isa-debug-exit port: QEMU exits with (1 << 1) | 1.
_TRIAL_BOOT_SECTOR = bytes.fromhex("b001e6f4f4ebfe").ljust(510, b"\0") + b"\x55\xaa"
_TRIAL_EXIT = 3
_kvm_answer: bool | None = None


def trial_boot(accel: str, timeout_s: float = 10) -> bool:
    """Boot a three-instruction boot sector under ``accel``; True when QEMU exits as told.

    The CPU flags are those a real run uses: on some hosts KVM runs this sector with
    QEMU's default CPU model yet aborts on ``-cpu host``, or hangs at random.
    """
    with tempfile.TemporaryDirectory(prefix="libtrace-trial-") as tmp:
        image = Path(tmp) / "boot.img"
        image.write_bytes(_TRIAL_BOOT_SECTOR.ljust(1474560, b"\0"))
        argv = [
            QEMU,
            "-nographic",
            "-nodefaults",
            "-no-reboot",
            *accel_args(accel),
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-drive",
            f"file={image},format=raw,if=floppy",
            "-boot",
            "a",
        ]
        try:
            proc = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return proc.returncode == _TRIAL_EXIT


def kvm_works(timeout_s: float = 10) -> bool:
    """True when QEMU really runs a guest under KVM here (tried once per process)."""
    global _kvm_answer
    if _kvm_answer is None:
        _kvm_answer = os.access("/dev/kvm", os.R_OK | os.W_OK) and trial_boot("kvm", timeout_s)
    return _kvm_answer


def choose_accel() -> str:
    """``$LIBTRACE_VM_ACCEL`` if set, else kvm when :func:`kvm_works`, else tcg."""
    forced = os.environ.get(ACCEL_ENV, "").strip()
    if forced:
        if forced not in ("kvm", "tcg"):
            raise VmError(f"{ACCEL_ENV} must be kvm or tcg, not {forced!r}")
        return forced
    return "kvm" if kvm_works() else "tcg"


def mark_kvm_broken() -> None:
    """Remember, for this process, that KVM cannot boot real kernels."""
    global _kvm_answer
    _kvm_answer = False

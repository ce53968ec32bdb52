"""Run a command inside a kernel under QEMU and return an explicit verdict.

Theory of operation
-------------------
:func:`run` is the whole life of one guest:

1. A results directory is prepared on the host (a fresh temporary one unless
   the caller gives one to keep).  It receives ``cmd.sh`` (the command,
   verbatim) and ``env.sh`` (exports and the ``cd``), and becomes the guest's
   writable 9p share; see ``initramfs.py`` for what the guest does with it.
2. The initramfs for the kernel is built or taken from its cache, and a
   :class:`VmSpec` is turned into argv by the pure :func:`build_qemu_argv`
   (printed by ``libtrace vm run --show-command``).  ``-no-reboot`` plus
   ``panic=-1`` make every guest ending — the init's ``reboot -f`` or a
   kernel panic — an exit of QEMU.
3. QEMU's serial console (stdio) is read line by line by a thread that feeds
   a :class:`~libtrace.vm._console.ConsoleWatcher` and appends to the console
   log.  The main thread waits for QEMU under a hard deadline; past it, QEMU
   is killed (TIMEOUT).  Once the payload's exit has been seen, QEMU gets a
   short grace period to power off before it is killed anyway.
4. The verdict: a panic line → PANIC; the deadline → TIMEOUT; an exit code
   (from ``exit_code`` in the share, else the console sentinel) → PASS or
   FAIL, where a kernel splat (WARNING, BUG, Oops, lockups, RCU stalls)
   turns PASS into FAIL; anything else (QEMU cannot start, the kernel never
   reaches the init, a set-up step fails) → ERROR with the reason.

Guest failures never raise; :class:`~libtrace.errors.VmError` is raised only
for arguments that cannot describe a run.  For the host "kernel" the command
runs as a local process with the same timeout and result shape.

KVM is used only when a trial boot under it actually completes
(:func:`kvm_works`), because on some hosts ``/dev/kvm`` exists and QEMU hangs.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import VmError
from ._accel import (
    ACCEL_ENV,
    QEMU,
    accel_args,
    choose_accel,
    kvm_works,
    mark_kvm_broken,
    trial_boot,
)
from ._console import ConsoleWatcher
from ._vmlinux import boot_image
from .initramfs import GUEST_RESULTS, build_initramfs
from .kernels import Kernel, default_cache_dir

#: Kernel command line every guest gets.  panic=-1 reboots at once on a panic,
#: which -no-reboot turns into QEMU exiting; oopses and warnings do not panic
#: (panic_on_warn=0) so they are reported as splats and the run continues.
BASE_APPEND = (
    "console=ttyS0",
    "panic=-1",
    "panic_on_warn=0",
    "printk.time=1",
    "random.trust_cpu=on",
    "rdinit=/init",
)

#: Seconds QEMU may take to exit after the payload's exit was printed.
EXIT_GRACE_S = 15.0

#: Seconds the console reader may lag behind QEMU's exit.
READER_JOIN_S = 5.0

#: QEMU's own stderr kept for error reasons.
STDERR_KEEP_CHARS = 4000

#: Seconds a KVM guest may take to reach the init before KVM is deemed broken (it
#: takes about one); the run is then retried under TCG.
KVM_BOOT_S = 30.0

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Verdict(enum.IntEnum):
    """The outcome of one run."""

    #: The payload exited 0 and the kernel logged no splat.
    PASS = 0
    #: The payload exited non-zero, or exited 0 while the kernel logged a splat.
    FAIL = 1
    #: Not produced by :func:`run`; for callers that decide a run does not apply.
    SKIP = 2
    #: The kernel panicked.
    PANIC = 3
    #: The hard timeout expired and QEMU (or the host process) was killed.
    TIMEOUT = 4
    #: The run could not happen: QEMU did not start, the kernel did not boot, set-up failed.
    ERROR = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class VmSpec:
    """Everything :func:`build_qemu_argv` needs."""

    kernel: Kernel
    initrd: Path
    results_dir: Path
    memory_mb: int = 1024
    cpus: int = 1
    accel: str = "tcg"
    append: str = ""
    timeout_s: float = 300
    #: What ``-kernel`` loads when not ``kernel.vmlinuz``: the decompressed PVH vmlinux
    #: that :func:`spec_for` prepares, which boots about three seconds faster under TCG.
    boot_image: Path | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """What one run produced."""

    verdict: Verdict
    #: The payload's exit status; None when it never finished.
    exit_code: int | None
    #: One line saying why the verdict is what it is.
    reason: str
    #: Seconds until the init's first line (0 on the host; None if it never came).
    boot_s: float | None
    wall_s: float
    #: The last lines of the console.
    log_tail: str
    #: Kernel splat lines (WARNING, BUG, Oops, lockups, stalls) with their context.
    splats: tuple[str, ...]
    #: Boot lines where the kernel refused its own BTF (every BPF load then fails).
    btf_broken: tuple[str, ...] = ()


def build_qemu_argv(spec: VmSpec) -> list[str]:
    """The QEMU command line for ``spec``; pure (no I/O, no probing).

    Raises:
        VmError: the kernel is the host's, or the spec is out of range.
    """
    if spec.kernel.vmlinuz is None:
        raise VmError(f"kernel {spec.kernel.name} has no image to boot")
    if spec.accel not in ("tcg", "kvm"):
        raise VmError(f"unknown accelerator {spec.accel!r} (tcg or kvm)")
    if spec.memory_mb < 128 or spec.cpus < 1:
        raise VmError("a guest needs at least 128 MiB and one CPU")
    append = " ".join([*BASE_APPEND, spec.append.strip()]).strip()
    results = str(spec.results_dir).replace(",", ",,")  # QEMU's escape for a comma
    # fmt: off
    return [
        QEMU, "-nographic", "-nodefaults", "-no-reboot",
        *accel_args(spec.accel),
        "-m", str(spec.memory_mb),
        "-smp", str(spec.cpus),
        "-kernel", str(spec.boot_image or spec.kernel.vmlinuz),
        "-initrd", str(spec.initrd),
        "-append", append,
        "-serial", "stdio",
        "-monitor", "none",
        "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
        "-fsdev", f"local,id=results,path={results},security_model=none",
        "-device", "virtio-9p-pci,fsdev=results,mount_tag=results",
    ]
    # fmt: on


def initramfs_dir() -> Path:
    """Where built initramfs images are cached (beside the kernel cache)."""
    return default_cache_dir().parent / "initramfs"


def spec_for(
    kernel: Kernel,
    results_dir: Path,
    *,
    timeout_s: float = 300,
    memory_mb: int = 1024,
    append: str = "",
) -> VmSpec:
    """The spec :func:`run` uses for ``kernel`` (builds or reuses the initramfs).

    Raises:
        VmError: the initramfs cannot be built (e.g. a module is missing).
    """
    initrd = build_initramfs(kernel, initramfs_dir())
    assert kernel.vmlinuz is not None  # build_initramfs refuses the host
    return VmSpec(
        kernel=kernel,
        initrd=initrd,
        results_dir=results_dir,
        memory_mb=memory_mb,
        accel=choose_accel(),
        append=append,
        timeout_s=timeout_s,
        boot_image=boot_image(kernel.vmlinuz, default_cache_dir().parent / "vmlinux"),
    )


def payload_env(kernel: Kernel, results_dir: Path, env: dict[str, str] | None) -> dict[str, str]:
    """The variables the payload gets on top of its base environment.

    ``PATH`` starts with the directory of this Python, ``LIBTRACE_RESULTS`` names the
    results directory as the payload sees it, ``LIBTRACE_KERNEL`` the kernel's name.
    """
    exe_dir = str(Path(sys.executable).parent)
    system_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    if kernel.is_host:
        base = {
            "PATH": f"{exe_dir}:{os.environ.get('PATH', system_path)}",
            "LIBTRACE_RESULTS": str(results_dir),
        }
    else:
        base = {
            "PATH": f"{exe_dir}:{system_path}",
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "LIBTRACE_RESULTS": GUEST_RESULTS,
        }
    base["LIBTRACE_KERNEL"] = kernel.name
    for key in env or {}:
        if not _ENV_NAME.fullmatch(key):
            raise VmError(f"{key!r} is not a valid environment variable name")
    return {**base, **(env or {})}


def _write_payload(results: Path, command: str, variables: dict[str, str], cwd: str) -> None:
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in variables.items())
    (results / "env.sh").write_text(exports + f"cd {shlex.quote(cwd)}\n")
    (results / "cmd.sh").write_text(command + "\n")
    (results / "exit_code").unlink(missing_ok=True)


def _read_exit_code(results: Path) -> int | None:
    try:
        return int((results / "exit_code").read_text().strip())
    except (OSError, ValueError):
        return None


def _pump(stream: IO[bytes], on_line: Callable[[str], None]) -> None:
    for raw in stream:
        on_line(raw.decode("utf-8", "replace").rstrip("\r\n"))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def run(
    kernel: Kernel,
    command: str,
    *,
    timeout_s: float = 300,
    memory_mb: int = 1024,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
    console_log: Path | None = None,
    results_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    on_console: Callable[[str], None] | None = None,
    append: str = "",
) -> RunResult:
    """Run ``command`` with ``/bin/sh`` inside ``kernel`` (or on the host) and judge it.

    Args:
        kernel: from :func:`~libtrace.vm.kernels.resolve`.
        command: shell text, run as a script by the host's ``/bin/sh``.
        timeout_s: hard limit for the whole run, boot included.
        memory_mb: guest memory.
        cwd: the payload's working directory (default: this process's).  The guest sees
            the host's files everywhere except ``/tmp``, ``/run``, ``/proc``, ``/sys`` and
            ``/dev``, which are its own.
        env: variables added to the payload's environment (see :func:`payload_env`).
        console_log: file that receives the whole console as it streams.
        results_dir: a directory to keep (created if missing); the payload finds it
            as ``$LIBTRACE_RESULTS``.  Default: a temporary directory, removed after.
        progress: called with one line per slow step (building, booting).
        on_console: called with every console line as it arrives.
        append: extra kernel command-line parameters (ignored on the host).

    Returns:
        The verdict, exit code, reason, timings, log tail and kernel splats.

    Raises:
        VmError: only for arguments that cannot describe a run.
    """
    if not command.strip():
        raise VmError("the command is empty")
    if timeout_s <= 0 or memory_mb < 128:
        raise VmError("timeout_s must be positive and memory_mb at least 128")
    start = time.monotonic()
    with ExitStack() as stack:
        try:
            if results_dir is None:
                tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="libtrace-vm-"))
                results = Path(tmp)
            else:
                results = results_dir.resolve()
                results.mkdir(parents=True, exist_ok=True)
            variables = payload_env(kernel, results, env)
            _write_payload(results, command, variables, cwd or os.getcwd())
            log = stack.enter_context(open(console_log, "w")) if console_log else None
        except OSError as exc:
            raise VmError(f"cannot prepare the run: {exc}") from exc

        def on_line(line: str) -> None:
            if log is not None:
                log.write(line + "\n")
                log.flush()
            if on_console is not None:
                on_console(line)

        if kernel.is_host:
            return _run_host(results, timeout_s, start, on_line)
        try:
            if progress:
                progress(f"building the initramfs for {kernel.name}")
            spec = spec_for(
                kernel, results, timeout_s=timeout_s, memory_mb=memory_mb, append=append
            )
        except VmError as exc:
            return _error(str(exc), start)
        if progress:
            progress(f"booting {kernel.name} ({kernel.release}) under {spec.accel}")
        result = _run_guest(spec, start, on_line)
        if (
            spec.accel == "kvm"
            and result.boot_s is None
            and result.verdict in (Verdict.ERROR, Verdict.TIMEOUT)
        ):
            # KVM passed its trial but cannot boot this kernel: never again in this process.
            mark_kvm_broken()
            if progress:
                progress(f"KVM did not boot {kernel.name} ({result.reason}); retrying under tcg")
            retry = dataclasses.replace(spec, accel="tcg")
            result = _run_guest(retry, start, on_line)
        return result
    raise AssertionError("unreachable")  # pragma: no cover


def _error(reason: str, start: float, tail: str = "") -> RunResult:
    return RunResult(
        verdict=Verdict.ERROR,
        exit_code=None,
        reason=reason,
        boot_s=None,
        wall_s=time.monotonic() - start,
        log_tail=tail,
        splats=(),
    )


def _run_guest(spec: VmSpec, start: float, on_line: Callable[[str], None]) -> RunResult:
    launched = time.monotonic()
    watcher = ConsoleWatcher(launched)  # boot time counts from QEMU's start
    lock = threading.Lock()
    stderr_text: list[str] = []

    def console(line: str) -> None:
        with lock:
            watcher.feed(line, time.monotonic())
        on_line(line)

    def keep_stderr(line: str) -> None:
        if sum(map(len, stderr_text)) < STDERR_KEEP_CHARS:
            stderr_text.append(line)

    try:
        proc = subprocess.Popen(
            build_qemu_argv(spec),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        return _error(f"QEMU could not start: {exc.strerror or exc}", start)
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        threading.Thread(target=_pump, args=(proc.stdout, console), daemon=True),
        threading.Thread(target=_pump, args=(proc.stderr, keep_stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    deadline = start + spec.timeout_s
    timed_out = False
    finished_at: float | None = None
    while True:
        try:
            proc.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            pass
        now = time.monotonic()
        with lock:
            if watcher.finished and finished_at is None:
                finished_at = now
        if finished_at is not None and now - finished_at > EXIT_GRACE_S:
            _kill(proc)
            break
        if now > deadline:
            timed_out = True
            _kill(proc)
            break
        if spec.accel == "kvm" and watcher.booted_at is None and now - launched > KVM_BOOT_S:
            _kill(proc)
            break
    for reader in readers:
        reader.join(READER_JOIN_S)
    wall = time.monotonic() - start
    with lock:
        tail = "\n".join(watcher.tail)
        splats = tuple(watcher.splats)
        exit_code = _read_exit_code(spec.results_dir)
        if exit_code is None:
            exit_code = watcher.exit_code

        def result(verdict: Verdict, reason: str, code: int | None = None) -> RunResult:
            return RunResult(
                verdict=verdict,
                exit_code=code,
                reason=reason,
                boot_s=watcher.boot_s,
                wall_s=wall,
                log_tail=tail,
                splats=splats,
                btf_broken=tuple(watcher.btf_broken),
            )

        if watcher.panic:
            return result(Verdict.PANIC, watcher.panic_reason(), exit_code)
        if exit_code is not None:
            if exit_code != 0:
                extra = f"; kernel splat: {watcher.splat_heads[0]}" if splats else ""
                return result(Verdict.FAIL, f"exit code {exit_code}{extra}", exit_code)
            if splats:
                heads = " | ".join(watcher.splat_heads[:3])
                return result(Verdict.FAIL, f"exit code 0 but the kernel logged: {heads}", 0)
            return result(Verdict.PASS, "exit code 0", 0)
        if timed_out:
            if watcher.payload_started:
                stage = "while the payload ran"
            elif watcher.booted_at is None:
                stage = "during boot"
            else:
                stage = "during set-up"
            return result(Verdict.TIMEOUT, f"timed out after {spec.timeout_s:g} s {stage}")
        if watcher.error:
            return result(Verdict.ERROR, f"guest set-up failed: {watcher.error}")
        qemu_err = " ".join(" ".join(stderr_text).split())
        if proc.returncode not in (0, None) and qemu_err:
            return result(Verdict.ERROR, f"QEMU failed (exit {proc.returncode}): {qemu_err}")
        if watcher.booted_at is None:
            last = next((line for line in reversed(watcher.tail) if line.strip()), "no output")
            return result(Verdict.ERROR, f"the kernel never reached the init; last line: {last}")
        return result(Verdict.ERROR, "the guest stopped before the payload finished")


def _run_host(
    results: Path, timeout_s: float, start: float, on_line: Callable[[str], None]
) -> RunResult:
    watcher = ConsoleWatcher(start)

    def line_in(line: str) -> None:
        watcher.tail.append(line)
        on_line(line)

    env_sh, cmd_sh = (shlex.quote(str(results / name)) for name in ("env.sh", "cmd.sh"))
    script = f". {env_sh} && exec /bin/sh {cmd_sh}"
    try:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=results,
        )
    except OSError as exc:
        return _error(f"/bin/sh could not start: {exc.strerror or exc}", start)
    assert proc.stdout is not None
    reader = threading.Thread(target=_pump, args=(proc.stdout, line_in), daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=max(0.0, start + timeout_s - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill(proc)
        reader.join(READER_JOIN_S)
        return RunResult(
            verdict=Verdict.TIMEOUT,
            exit_code=None,
            reason=f"timed out after {timeout_s:g} s",
            boot_s=0.0,
            wall_s=time.monotonic() - start,
            log_tail="\n".join(watcher.tail),
            splats=(),
        )
    reader.join(READER_JOIN_S)
    code = 128 - code if code < 0 else code  # killed by a signal: report it as sh does
    (results / "exit_code").write_text(f"{code}\n")
    return RunResult(
        verdict=Verdict.PASS if code == 0 else Verdict.FAIL,
        exit_code=code,
        reason=f"exit code {code}",
        boot_s=0.0,
        wall_s=time.monotonic() - start,
        log_tail="\n".join(watcher.tail),
        splats=(),
    )


__all__ = [
    "ACCEL_ENV",
    "QEMU",
    "RunResult",
    "Verdict",
    "VmSpec",
    "build_qemu_argv",
    "choose_accel",
    "kvm_works",
    "run",
    "spec_for",
    "trial_boot",
]

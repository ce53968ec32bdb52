"""The ``libtrace vm run`` and ``libtrace kernels`` commands.

:func:`add_vm_commands` adds them to the main parser; each sets ``handler``,
which the main CLI calls with the parsed arguments and whose return value is
the exit status.  ``vm run`` passes the guest's exit code through; the other
verdicts map to the codes in :data:`VERDICT_EXIT`.  Progress goes to stderr
through rich; the payload's output goes to stdout.  Rich is imported by the
handlers, the kernel builder (:mod:`._build_cli`) only with ``kernels``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ExitCode, VmError, print_error
from ._errors import KernelNotFoundError, KernelPackageError
from .initramfs import EXIT_SENTINEL, START_SENTINEL
from .kernels import cached, default_cache_dir, known_kernels, resolve
from .qemu import RunResult, Verdict, build_qemu_argv, run, spec_for

if TYPE_CHECKING:
    from rich.console import Console

#: Exit statuses of ``vm run`` for verdicts without a guest exit code.
VERDICT_EXIT = {Verdict.TIMEOUT: 124, Verdict.PANIC: 125, Verdict.ERROR: 1, Verdict.SKIP: 0}

#: Exit status for a kernel spec or package that cannot be used.

#: Log-tail lines shown when a run ends badly (the full console is in the log).
SHOWN_TAIL_LINES = 20


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def add_vm_commands(subparsers: Any) -> None:
    """Add ``vm`` (with ``vm run``) and ``kernels`` to the main CLI's subparsers."""
    add_vm_command(subparsers)
    add_kernels_command(subparsers)


def add_vm_command(subparsers: Any) -> None:
    """Add ``vm`` (with ``vm run``) to the main CLI's subparsers."""
    vm = subparsers.add_parser(
        "vm",
        help="boot a kernel under QEMU and run a command in it",
        description="Boot kernels under QEMU with the host's root filesystem (read-only, "
        "with a tmpfs overlay) and run commands inside them.",
    )
    vm_commands = vm.add_subparsers(dest="vm_command", required=True, metavar="VM_COMMAND")
    run_parser = vm_commands.add_parser(
        "run",
        help="run one command inside a kernel",
        description="Run COMMAND with /bin/sh inside the kernel SPEC and exit with its status "
        "(124 on timeout, 125 on a kernel panic, 1 when the VM could not run, 2 for an "
        "unusable kernel).  A single COMMAND word is shell text; several are quoted and joined.",
        epilog="SPEC: host, a catalog name (see `libtrace kernels`), a linux-image .deb, a "
        "directory with vmlinuz-* and lib/modules/*, a vmlinuz file, or an http(s) URL of a "
        ".deb.  The payload finds a writable results directory in $LIBTRACE_RESULTS.",
    )
    run_parser.add_argument("--kernel", required=True, metavar="SPEC", help="the kernel to boot")
    run_parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=300.0,
        metavar="S",
        help="hard limit in seconds, boot included (default 300)",
    )
    run_parser.add_argument(
        "--memory", type=int, default=1024, metavar="MIB", help="guest memory (default 1024)"
    )
    run_parser.add_argument(
        "--show-command", action="store_true", help="print the QEMU command line before booting"
    )
    run_parser.add_argument(
        "--console",
        action="store_true",
        help="print the whole console (kernel boot included), not only the payload's output",
    )
    run_parser.add_argument(
        "--console-log", type=Path, metavar="FILE", help="write the whole console to FILE"
    )
    run_parser.add_argument(
        "--results-dir",
        type=Path,
        metavar="DIR",
        help="keep the results directory here (default: a temporary one)",
    )
    run_parser.add_argument("command", nargs="+", metavar="COMMAND", help="what to run")
    run_parser.set_defaults(handler=handle_vm_run)


def add_kernels_command(subparsers: Any) -> None:
    """Add ``kernels`` (with ``kernels build`` and ``kernels btf``) to the main CLI's subparsers."""
    from ._build_cli import add_build_commands  # imports the kernel builder and rich

    kernels = subparsers.add_parser(
        "kernels",
        help="list the kernels the catalog knows and which are cached",
        description="List the catalog's kernels and whether each is already downloaded "
        f"(cache: {default_cache_dir()}).  Never touches the network.",
    )
    kernels.add_argument("--json", action="store_true", help="print a JSON array")
    kernels.set_defaults(handler=handle_kernels)
    kernel_commands = kernels.add_subparsers(
        dest="kernels_command", required=False, metavar="KERNELS_COMMAND"
    )
    add_build_commands(kernel_commands)


def _command_text(words: list[str]) -> str:
    words = words[1:] if words and words[0] == "--" else words
    return words[0] if len(words) == 1 else shlex.join(words)


class _ConsolePrinter:
    """Prints the payload's part of the console (or all of it) as it streams."""

    def __init__(self, out: Console, everything: bool) -> None:
        self.out = out
        self.everything = everything
        self.in_payload = False

    def __call__(self, line: str) -> None:
        if self.everything:
            self.out.out(line, highlight=False)
            return
        text = line.strip()
        if text == START_SENTINEL:
            self.in_payload = True
        elif text.startswith(EXIT_SENTINEL):
            self.in_payload = False
        elif self.in_payload:
            self.out.out(line, highlight=False)


def _summary(err: Console, result: RunResult, name: str, release: str) -> None:
    from rich.markup import escape

    style = {Verdict.PASS: "green", Verdict.FAIL: "red"}.get(result.verdict, "bold red")
    boot = f", boot {result.boot_s:.1f} s" if result.boot_s else ""
    err.print(
        f"[{style}]{result.verdict.name}[/]: {escape(result.reason)} "
        f"[dim]({escape(name)} {escape(release)}{boot}, {result.wall_s:.1f} s in all)[/]"
    )
    for splat in result.splats[:SHOWN_TAIL_LINES]:
        err.print(f"[yellow]  {escape(splat)}[/]")


def handle_vm_run(args: argparse.Namespace) -> int:
    """``libtrace vm run``: returns the guest's exit code (or a verdict's code)."""
    from rich.console import Console
    from rich.markup import escape

    err = Console(stderr=True)
    out = Console(soft_wrap=True)

    def progress(message: str) -> None:
        err.print(f"[dim]… {escape(message)}[/]")

    try:
        kernel = resolve(args.kernel, progress=progress)
    except (KernelNotFoundError, KernelPackageError) as exc:
        print_error(exc)
        return ExitCode.USAGE
    except VmError as exc:
        print_error(exc)
        return VERDICT_EXIT[Verdict.ERROR]
    command = _command_text(args.command)
    with tempfile.TemporaryDirectory(prefix="libtrace-vm-") as tmp:
        results = args.results_dir or Path(tmp)
        if args.show_command:
            if kernel.is_host:
                err.print(f"[dim]host kernel: /bin/sh -c {escape(shlex.quote(command))}[/]")
            else:
                try:
                    spec = spec_for(
                        kernel, results.resolve(), timeout_s=args.timeout, memory_mb=args.memory
                    )
                    err.print(escape(shlex.join(build_qemu_argv(spec))), highlight=False)
                except VmError as exc:
                    print_error(exc)
        try:
            result = run(
                kernel,
                command,
                timeout_s=args.timeout,
                memory_mb=args.memory,
                console_log=args.console_log,
                results_dir=results,
                progress=progress,
                on_console=_ConsolePrinter(out, args.console or kernel.is_host),
            )
        except VmError as exc:
            print_error(exc)
            return ExitCode.USAGE
    if result.verdict not in (Verdict.PASS, Verdict.FAIL) and not args.console:
        for line in result.log_tail.splitlines()[-SHOWN_TAIL_LINES:]:
            err.print(f"[dim]| {escape(line)}[/]", highlight=False)
    _summary(err, result, kernel.name, kernel.release)
    if result.exit_code is not None:
        return result.exit_code or (1 if result.verdict is Verdict.FAIL else 0)
    return VERDICT_EXIT[result.verdict]


def _cached_build(name: str) -> Any:
    from .build import built_names

    try:
        return resolve(name) if name in built_names() else None
    except VmError:
        return None


def handle_kernels(args: argparse.Namespace) -> int:
    """``libtrace kernels``: the catalog and what of it is cached."""
    from rich.console import Console
    from rich.table import Table

    from .build import built_names

    rows = []
    for name in [*known_kernels(), *built_names()]:
        kernel = cached(name) or _cached_build(name)
        rows.append(
            {
                "name": name,
                "cached": kernel is not None,
                "release": kernel.release if kernel else None,
                "version": kernel.version if kernel else None,
                "source": kernel.source if kernel else None,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return ExitCode.OK
    table = Table("kernel", "cached", "release", "version", "source", box=None)
    for row in rows:
        table.add_row(
            str(row["name"]),
            "yes" if row["cached"] else "no",
            str(row["release"] or ""),
            str(row["version"] or ""),
            str(row["source"] or ""),
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # a pipe has no width: do not truncate the rows
    console.print(table)
    return ExitCode.OK

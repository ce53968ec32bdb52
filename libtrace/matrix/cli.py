"""``libtrace matrix``, ``libtrace matrix merge`` and ``libtrace matrix report``.

The parser needs only the sweep's default timeout; the sweep, the kernel
catalog and rich are imported by the handlers.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, ExitCode
from .report import REPORT_HTML, REPORT_JSON, CellVerdict, Report, ReportWriter, render

if TYPE_CHECKING:
    from rich.console import Console

#: Verdicts that make ``libtrace matrix`` exit non-zero.
BAD = {CellVerdict.FAIL, CellVerdict.PANIC, CellVerdict.TIMEOUT, CellVerdict.ERROR}
STYLE = {
    CellVerdict.PASS: "green",
    CellVerdict.FAIL: "red",
    CellVerdict.SKIP: "yellow",
    CellVerdict.PANIC: "magenta",
    CellVerdict.TIMEOUT: "dark_orange",
    CellVerdict.ERROR: "red",
    CellVerdict.NOT_AVAILABLE: "dim",
}


def expand_kernels(text: str) -> tuple[str, ...]:
    """``default``, ``all``, names, paths, URLs and shell patterns over the catalog."""
    from ..vm.build import built_names
    from ..vm.kernels import known_kernels
    from .sweep import DEFAULT_KERNELS

    specs: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part == "default":
            specs += DEFAULT_KERNELS
        elif part == "all":
            specs += known_kernels() + built_names()
        elif any(ch in part for ch in "*?["):
            matches = [
                k
                for k in known_kernels()
                if fnmatch.fnmatch(k, part) or fnmatch.fnmatch(k.removeprefix("debian-"), part)
            ]
            if not matches:
                raise ConfigError(f"no known kernel matches {part!r} (see `libtrace kernels`)")
            specs += matches
        else:
            if not _plausible_kernel(part):
                raise ConfigError(
                    f"{part!r} is no known kernel (see `libtrace kernels`), "
                    "nor an existing file or directory, nor a URL"
                )
            specs.append(part)
    return tuple(dict.fromkeys(specs))


def _plausible_kernel(spec: str) -> bool:
    """A catalog name, a path that exists or a URL: worth a row (it may still fail)."""
    from ..vm.build import NAME_RE as BUILT_NAME_RE
    from ..vm.kernels import POINT_RE, known_kernels

    return (
        spec in known_kernels()
        or POINT_RE.fullmatch(spec) is not None
        or BUILT_NAME_RE.fullmatch(spec) is not None
        or os.path.exists(spec)
        or spec.startswith(("http://", "https://"))
    )


def add_matrix_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from .sweep import DEFAULT_TIMEOUT_S

    matrix = commands.add_parser(
        "matrix",
        help="boot kernels, run the kernel-level tests, report kernel x capability",
        description="Run the tracer's kernel-level tests on each kernel (QEMU guests; the host "
        "directly) and write matrix.json, matrix.md, matrix.png, matrix.html and JUnit XML "
        "per kernel.",
    )
    matrix.add_argument(
        "--kernels",
        default="default",
        metavar="SPEC,...",
        help="catalog names (see `libtrace kernels`), patterns like '5.10*', "
        "'all', 'default' (host, debian-5.10, debian-6.1, debian-6.12), "
        "or a .deb, directory, vmlinuz or URL",
    )
    matrix.add_argument("--report", type=Path, default=Path("results/matrix"), metavar="DIR")
    matrix.add_argument(
        "--jobs", type=int, default=2, metavar="N", help="kernels run at once (default 2)"
    )
    matrix.add_argument(
        "--shard",
        default="1/1",
        metavar="I/N",
        help="run only the I-th of N slices of the kernel list",
    )
    matrix.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"per-kernel time limit (default {DEFAULT_TIMEOUT_S:.0f})",
    )
    matrix.add_argument(
        "--append", default="", metavar="CMDLINE", help="extra kernel command line for the guests"
    )
    matrix.add_argument(
        "--emit-ci-matrix",
        action="store_true",
        help="print the kernel list as JSON for a CI job matrix, and exit",
    )
    matrix.add_argument(
        "-k",
        dest="select",
        metavar="EXPR",
        help="only the kernel-level tests matching EXPR (pytest -k)",
    )
    matrix.set_defaults(handler=run_matrix)
    sub = matrix.add_subparsers(dest="matrix_command", metavar="[merge|report]")
    merge = sub.add_parser(
        "merge",
        help="join shard reports into one",
        description="Join the matrix.json of several shard reports.",
    )
    merge.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    merge.add_argument(
        "--report", dest="merge_report", type=Path, default=Path("results/matrix"), metavar="OUT"
    )
    merge.set_defaults(handler=run_merge)
    report = sub.add_parser(
        "report",
        help="render a report again (matrix.md, .png, .html), optionally against an older one",
        description="Render the matrix.json of a report directory as matrix.md, matrix.png "
        "and matrix.html (matrix.json is not changed). With --compare, list the cells whose "
        "verdict changed since an older matrix.json, on the terminal and in the page. "
        "Exits 1 when the report holds a bad cell (as libtrace matrix does), 2 when a report "
        "cannot be read.",
    )
    report.add_argument(
        "report_dir",
        nargs="?",
        type=Path,
        default=Path("results/matrix"),
        metavar="DIR",
        help="the report directory (default results/matrix)",
    )
    report.add_argument(
        "--compare",
        type=Path,
        metavar="OLD.json",
        help="an earlier matrix.json (or its directory) to list the changed cells against",
    )
    report.set_defaults(handler=run_report)


def print_report(report: Report, console: Console | None = None) -> None:
    """The matrix on the console: one column per kernel, one row per capability
    (there are more capabilities than a terminal has room for as columns)."""
    from rich.table import Table

    from .capabilities import column_title
    from .layout import short_name

    if console is None:
        from rich.console import Console

        # At least 160 columns (a pipe, a narrow terminal): a column per kernel.
        console = Console(width=max(Console().width, 160))

    columns = report.columns()
    booted = [row for row in report.kernels if row.available]
    table = Table(title="libtrace kernel matrix", title_justify="left")
    # The capability names never give way; a long kernel name (a built kernel's
    # path) folds onto more lines of its header instead.
    titles = ["boot s", *(column_title(name) for name in columns)]
    table.add_column("capability", no_wrap=True, min_width=max(map(len, titles)))
    for row in booted:
        table.add_column(short_name(row.name), overflow="fold", min_width=len("timeout"))
    table.add_row(
        "boot s", *(f"{row.boot_s:.1f}" if row.boot_s is not None else "" for row in booted)
    )
    for name in columns:
        cells = [
            f"[{STYLE[c.verdict]}]{c.verdict}[/]" if (c := row.cells.get(name)) else ""
            for row in booted
        ]
        table.add_row(column_title(name), *cells)
    console.print(table)
    missing = [row.name for row in report.kernels if not row.available]
    if missing:
        console.print(
            "not available here (rows with predictions in matrix.md and matrix.html): "
            + ", ".join(missing),
            highlight=False,
        )


def _exit_code(report: Report) -> int:
    """FAILED if a cell went bad or a booted kernel did not do what was predicted."""
    bad = any(c.verdict in BAD for r in report.kernels for c in r.cells.values())
    disagree = any(r.prediction_agrees() is False for r in report.kernels)
    return ExitCode.FAILED if bad or disagree else ExitCode.OK


def run_matrix(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .sweep import SweepOptions, parse_shard, sweep

    kernels = expand_kernels(args.kernels)
    if args.emit_ci_matrix:
        print(json.dumps({"kernel": list(kernels)}))
        return ExitCode.OK
    # Before any kernel boots: a report path that cannot be a directory is said now,
    # not after the sweep's minutes (the CLI makes the OSError one line, exit 2).
    args.report.mkdir(parents=True, exist_ok=True)
    options = SweepOptions(
        kernels=kernels,
        report_dir=args.report,
        jobs=args.jobs,
        shard=parse_shard(args.shard),
        timeout_s=args.timeout,
        pytest_args=("-k", args.select) if args.select else (),
        append=args.append,
    )
    console = Console(stderr=True)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.fields[kernel]:<14}"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks: dict[str, object] = {}

        def update(kernel: str, status: str) -> None:
            if kernel not in tasks:
                tasks[kernel] = progress.add_task(status, kernel=kernel, total=None)
            progress.update(tasks[kernel], description=status)  # type: ignore[arg-type]

        report = sweep(options, update)
    print_report(report)
    console.print(
        f"report: {args.report / REPORT_JSON} (+ matrix.md, matrix.png, {REPORT_HTML}, "
        "junit-*.xml)"
    )
    return _exit_code(report)


def run_merge(args: argparse.Namespace) -> int:

    report = Report.merge(args.dirs)
    writer = ReportWriter(args.merge_report, report)
    writer.finish()
    print_report(report)
    return _exit_code(report)


def run_report(args: argparse.Namespace) -> int:
    """Render again; the exit code says, as the sweep's does, whether a cell went bad."""

    from .compare import changes

    report = Report.load(args.report_dir)
    # Read before anything is written: a bad --compare leaves the directory as it was.
    previous = Report.load_file(args.compare) if args.compare else None
    render(args.report_dir, report, previous, str(args.compare or ""))
    print_report(report)
    if previous is not None:
        diff = changes(previous, report)
        noun = "cell" if len(diff) == 1 else "cells"
        print(f"{len(diff)} {noun} changed since {args.compare}" + (":" if diff else ""))
        for change in diff:
            print(f"  {change.line()}")
    print(f"page: {args.report_dir / REPORT_HTML}")
    return _exit_code(report)

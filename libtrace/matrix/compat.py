"""``libtrace compat``: the static load prediction, per kernel.

Contract: ``libtrace compat [--kernel VERSION|PATH]... [--report DIR] [--json]``
prints one JSON object per kernel,
``{"kernel","variant","loads","reasons","source":"predicted"|"booted"}``.
Without ``--kernel`` it covers the seed's series (4.14 … 5.16) and the host.
A kernel given as a path (a .deb, a directory, a vmlinuz) is read without
booting: its version from the image, its config from the package.  With
``--report`` a kernel that a sweep booted reports what really happened.
The parser imports nothing heavy: the prediction, the kernel catalog and
rich are imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from .prediction import Prediction
    from .report import Report


def _predict_spec(spec: str) -> tuple[str, Prediction]:
    """A version like 5.4 or 5.10.237, ``host``, or a kernel (name, path, URL)."""
    from ..vm import KernelNotFoundError
    from ..vm import kernels as vm_kernels
    from .prediction import config_beside, parse_version, predict

    if spec == "host":
        release = os.uname().release
        return f"host ({release})", predict(parse_version(release), config_beside(None, release))
    if re.fullmatch(r"\d+\.\d+(\.\d+)?", spec):
        return spec, predict(parse_version(spec))
    # A catalog or built kernel name, a .deb, a directory, a vmlinuz or a URL.
    try:
        kernel = vm_kernels.resolve(spec)
    except KernelNotFoundError as exc:
        raise ConfigError(str(exc)) from None
    version = parse_version(kernel.version or kernel.release)
    return spec, predict(version, config_beside(kernel.modules, kernel.release, kernel.vmlinuz))


def _booted(report: Report | None, name: str) -> bool | None:
    """Did the attach column pass on a booted row of that name? None: not booted."""
    from .report import CellVerdict

    if report is None:
        return None
    for row in report.kernels:
        if row.available and row.name == name and "attach" in row.cells:
            return row.cells["attach"].verdict is CellVerdict.PASS
    return None


def compat(specs: list[str], report_dir: Path | None = None) -> list[dict[str, object]]:
    from .report import Report

    report = Report.load(report_dir) if report_dir else None
    rows = []
    for spec in specs:
        name, prediction = _predict_spec(spec)
        row: dict[str, object] = {"kernel": name, **prediction.to_json(), "source": "predicted"}
        booted = _booted(report, spec)
        if booted is not None:
            row.update(loads=booted, source="booted")
        rows.append(row)
    return rows


def add_compat_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "compat",
        help="predict, per kernel, which BPF object loads and why (no boot)",
        description="Read the compiled BPF objects and say, for each kernel version or "
        "kernel image, which variant the tracer would choose and whether it loads.",
    )
    parser.add_argument(
        "--kernel",
        action="append",
        default=[],
        metavar="VERSION|PATH",
        help="a version (5.4, 5.10.237), 'host', or a .deb, directory or "
        "vmlinuz (repeatable; default: the seed's 4.14-5.16 series and the host)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="a matrix report: kernels it booted report their real verdict",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(handler=run_compat)


def run_compat(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..bpf import kernel_features as features
    from .sweep import SEED_SERIES

    specs = args.kernel or [features.format_version(s) for s in SEED_SERIES] + ["host"]
    try:
        rows = compat(specs, args.report)
    except FileNotFoundError as exc:
        raise ConfigError(str(exc)) from None
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return ExitCode.OK
    table = Table(title="libtrace compat", title_justify="left")
    for column in ("kernel", "variant", "loads", "source", "reasons"):
        table.add_column(column)
    for row in rows:
        reasons = "; ".join(row["reasons"]) if isinstance(row["reasons"], list) else ""
        table.add_row(
            str(row["kernel"]),
            str(row["variant"]),
            "[green]yes[/]" if row["loads"] else "[red]no[/]",
            str(row["source"]),
            reasons,
        )
    Console(width=max(Console().width, 140)).print(table)
    return ExitCode.OK

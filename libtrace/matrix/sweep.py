"""The sweep: every kernel of the plan, its kernel-level tests, one report.

Theory of operation: the plan lists the kernels asked for and, as rows of
their own, the seed's 4.14–5.16 series that no available kernel covers (with
a static prediction).  Each available kernel runs in a worker thread: it is
resolved (downloaded, cached), booted under QEMU with the tracer's
kernel-level tests as the payload (the host row runs them directly), and its
row is built from the columns the pytest plugin wrote into the run's results
directory, corrected by what the VM runner saw (a panic, a timeout, a kernel
log splat).  Each row is written to matrix.json the moment it is done.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..bpf import kernel_features as features
from ..bpf.build import OBJECTS_ENV, object_dir
from ..errors import ConfigError, LibtraceError
from ..host.go_toolchains import ToolchainError, selected_versions
from ..host.go_toolchains import build as build_go
from ..vm import kernels as vm_kernels
from ..vm import qemu
from ..vm.build import NAME_RE as BUILT_NAME_RE
from .capabilities import capabilities
from .prediction import config_beside, parse_version, predict
from .report import FACTS_FILE, PENDING, Cell, CellVerdict, KernelRow, Report, ReportWriter

log = logging.getLogger(__name__)

#: The default sweep (tox -e matrix): the host and one kernel per Debian release.
DEFAULT_KERNELS = ("host", "debian-5.10", "debian-6.1", "debian-6.12")
#: The series the seed promises; those no available kernel covers get a
#: prediction row rather than silently vanishing.
SEED_SERIES: tuple[tuple[int, int], ...] = tuple(
    [(4, minor) for minor in range(14, 21)] + [(5, minor) for minor in range(0, 17)]
)
#: The kernel-level tests, relative to the repository.
KERNEL_TESTS = (
    "tests/tracer/test_capture.py",
    "tests/tracer/test_cleanup.py",
    "tests/golang/test_watch.py",
    "tests/check/test_scenarios.py",
)
#: The Go program the Go TLS column traces (tests/golang/test_watch.py).
GO_TEST_PROGRAM = "tests/golang/programs/https_server"
#: Guest time budget per kernel: the tests take a few minutes under TCG.
DEFAULT_TIMEOUT_S = 900.0
#: Where the results of each run are kept inside the report directory.
RUNS_DIR = "runs"

Progress = Callable[[str, str], None]  # (kernel, status)


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepOptions:
    kernels: tuple[str, ...] = DEFAULT_KERNELS
    report_dir: Path = Path("results/matrix")
    jobs: int = 2
    shard: tuple[int, int] = (1, 1)
    timeout_s: float = DEFAULT_TIMEOUT_S
    tests: tuple[str, ...] = KERNEL_TESTS
    #: extra pytest arguments (e.g. ``-k native`` for a quick sweep)
    pytest_args: tuple[str, ...] = ()
    #: extra guest kernel command line (e.g. ``mitigations=off``)
    append: str = ""

    def __post_init__(self) -> None:
        index, count = self.shard
        if not 1 <= index <= count:
            raise ConfigError(f"shard {index}/{count} does not exist")
        if self.jobs < 1:
            raise ConfigError("--jobs must be at least 1")


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"shard must look like I/N, not {text!r}") from None
    return index, count


def repository_root() -> Path:
    """The source checkout that holds the kernel-level tests."""
    for candidate in (Path(__file__).resolve().parents[2], Path.cwd()):
        if all((candidate / test).exists() for test in KERNEL_TESTS):
            return candidate
    raise ConfigError(
        "the kernel-level tests (tests/tracer) are not here: "
        "run the matrix from a source checkout of libtrace"
    )


def shard_kernels(kernels: tuple[str, ...], shard: tuple[int, int]) -> list[str]:
    index, count = shard
    return list(kernels)[index - 1 :: count]


def unavailable_rows(covered: set[tuple[int, int]]) -> list[KernelRow]:
    """A row for every seed series that no kernel of the sweep covers."""
    rows = []
    for series in SEED_SERIES:
        if series in covered:
            continue
        name = features.format_version(series)
        predicted: dict[str, Any] | None = None
        try:
            prediction = predict(series)
            note, predicted = prediction.sentence(), prediction.to_json()
        except LibtraceError as exc:
            note = f"no prediction: {exc}"
        cell = Cell(CellVerdict.NOT_AVAILABLE, "no kernel of this series can be had here")
        rows.append(
            KernelRow(
                name=name,
                version=name,
                source="seed (not available here)",
                available=False,
                note=note,
                cells={c.name: cell for c in capabilities()},
                predicted=predicted,
            )
        )
    return rows


def _catalog_series(spec: str) -> tuple[int, int] | None:
    """The series a catalog or built name stands for (debian-5.10, 5.10-nobtf → 5.10)."""
    if spec.startswith("debian-"):
        return parse_version(spec.removeprefix("debian-"))
    return parse_version(spec) if BUILT_NAME_RE.fullmatch(spec) else None


def guest_command(repo: Path, options: SweepOptions) -> str:
    """The payload: the kernel-level tests, reporting into ``$LIBTRACE_RESULTS``.

    The VM runner sets LIBTRACE_RESULTS to the results share as the guest
    sees it (or to the results directory itself for the host row).
    """
    argv = [
        sys.executable,
        "-m",
        "pytest",
        *options.tests,
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "libtrace.matrix.plugin",
        "-m",
        "capability or variant_capability",
        *options.pytest_args,
    ]
    reports = (
        '--capability-report "$LIBTRACE_RESULTS/cells.json" '
        '--junitxml "$LIBTRACE_RESULTS/junit.xml"'
    )
    return f"cd {shlex.quote(str(repo))} && {shlex.join(argv)} {reports}"


def _row_from_run(kernel: vm_kernels.Kernel, result: qemu.RunResult, run_dir: Path) -> KernelRow:
    columns = _read_json(run_dir / "cells.json")
    cells: dict[str, Cell] = {}
    tail = " | ".join(result.log_tail.strip().splitlines()[-3:])
    for capability in capabilities():
        column = columns.get(capability.name)
        if column is None and columns:
            continue  # not selected in this sweep (-k)
        if result.verdict in (qemu.Verdict.PANIC, qemu.Verdict.TIMEOUT, qemu.Verdict.ERROR):
            # What finished before the guest died stands; the rest shares its fate.
            if column and column["verdict"] != PENDING:
                cells[capability.name] = Cell.from_json(column)
            else:
                verdict = CellVerdict(result.verdict.name.lower())
                cells[capability.name] = Cell(verdict, result.reason or tail)
        elif column is None or column["verdict"] == PENDING:
            cells[capability.name] = Cell(
                CellVerdict.ERROR, f"no test ran (exit {result.exit_code}): {tail}"
            )
        else:
            cells[capability.name] = Cell.from_json(column)
    if result.btf_broken:
        # Not the tracer's failure: the kernel cannot load any BPF with BTF.
        why = (f"the kernel rejected its own BTF at boot ({result.btf_broken[0]}): every "
               "BPF load fails; rebuild it with BTF it can read (libtrace kernels build) "
               "or without")  # fmt: skip
        for name, cell in cells.items():
            if cell.verdict is CellVerdict.FAIL:
                cells[name] = replace(cell, verdict=CellVerdict.ERROR, detail=why)
    if result.splats:
        quoted = " | ".join(result.splats[:3])
        for name, cell in cells.items():
            if cell.verdict is CellVerdict.PASS:
                cells[name] = replace(
                    cell,
                    verdict=CellVerdict.FAIL,
                    detail=f"kernel log: {quoted}",
                    log="\n".join(result.splats),
                )
    return KernelRow(
        name=kernel.name,
        version=kernel.version or kernel.release,
        source=kernel.source,
        available=True,
        boot_s=result.boot_s,
        wall_s=round(result.wall_s, 1),
        cells=cells,
        note=f"{kernel.release}: {result.verdict.name.lower()}"
        + (f" ({result.reason})" if result.reason else ""),
        variant=str(_read_json(run_dir / FACTS_FILE).get("variant", "")),
        predicted=_prediction(kernel),
        log_tail=result.log_tail,
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _prediction(kernel: vm_kernels.Kernel) -> dict[str, Any] | None:
    """The static prediction for a booted kernel, to set beside its verdict."""
    try:
        version = parse_version(kernel.version or kernel.release)
        config = config_beside(kernel.modules, kernel.release, kernel.vmlinuz)
        return predict(version, config).to_json()
    except LibtraceError:
        return None


def _error_row(spec: str, reason: str, wall_s: float | None = None) -> KernelRow:
    """The row of a kernel that could not be set up: every cell ``error``."""
    cell = Cell(CellVerdict.ERROR, reason)
    return KernelRow(
        name=spec,
        version="",
        source=spec,
        available=True,
        wall_s=wall_s,
        note=reason,
        cells={c.name: cell for c in capabilities()},
    )


def file_name(kernel_name: str) -> str:
    """A file name for a row: user kernels are named by their path or URL, which
    must never be joined to the report directory as they are (an absolute path
    would replace it, and the run directory is emptied before use)."""
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", kernel_name).strip("._")
    if safe == kernel_name:
        return safe
    return f"{safe[-60:]}-{hashlib.sha256(kernel_name.encode()).hexdigest()[:8]}"


def run_kernel(
    spec: str, options: SweepOptions, repo: Path, progress: Progress, objects: Path
) -> KernelRow:
    """Resolve one kernel, run its cells, and return its row (never raises)."""
    started = time.monotonic()
    try:
        kernel = vm_kernels.resolve(spec, progress=lambda text: progress(spec, text))
    except LibtraceError as exc:
        return _error_row(spec, str(exc), round(time.monotonic() - started, 1))
    run_dir = options.report_dir / RUNS_DIR / file_name(kernel.name)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    progress(spec, "booting" if not kernel.is_host else "running on the host")
    result = qemu.run(
        kernel,
        guest_command(repo, options),
        timeout_s=options.timeout_s,
        results_dir=run_dir,
        console_log=run_dir / "console.log",
        append=options.append,
        env={OBJECTS_ENV: str(objects)},
    )
    row = _row_from_run(kernel, result, run_dir)
    if (run_dir / "junit.xml").exists():
        junit = options.report_dir / f"junit-{file_name(kernel.name)}.xml"
        shutil.copy(run_dir / "junit.xml", junit)
    return row


def _prepare_go_program(repo: Path, options: SweepOptions, progress: Progress) -> None:
    """Build the Go TLS column's test program on the host (the cache is shared
    with the guests, which would otherwise build it under emulation)."""
    if not any("golang" in test for test in options.tests):
        return
    version = selected_versions()[-1]  # the one tests/golang/test_watch.py uses
    progress("host", f"building the Go test program with Go {version}")
    try:
        build_go(repo / GO_TEST_PROGRAM, version, False)
    except ToolchainError as exc:  # the guests' Go tests then skip, saying why
        log.warning("Go TLS column: %s", exc)


def sweep(options: SweepOptions, progress: Progress | None = None) -> Report:
    """Run the plan; the report on disk grows row by row."""
    progress = progress or (lambda _kernel, _status: None)
    repo = repository_root()
    # Compile the BPF objects once, on the host; the guests load these.
    objects = object_dir()
    _prepare_go_program(repo, options, progress)
    writer = ReportWriter(options.report_dir)
    kernels = shard_kernels(options.kernels, options.shard)
    covered = {s for s in map(_catalog_series, options.kernels) if s}
    for row in unavailable_rows(covered):
        writer.add(row)
    with ThreadPoolExecutor(max_workers=options.jobs) as pool:
        futures = {
            pool.submit(run_kernel, spec, options, repo, progress, objects): spec
            for spec in kernels
        }
        for future in as_completed(futures):
            try:
                row = future.result()
            except Exception as exc:  # a harness bug must not cost the other rows
                log.exception("the sweep of %s failed", futures[future])
                row = _error_row(futures[future], f"harness error: {exc!r}")
            writer.add(row)
            progress(
                futures[future],
                "done: "
                + ", ".join(
                    f"{sum(c.verdict is v for c in row.cells.values())} {v}"
                    for v in CellVerdict
                    if any(c.verdict is v for c in row.cells.values())
                ),
            )
    writer.finish()
    return writer.report

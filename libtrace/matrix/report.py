"""The matrix report: a row per kernel, a cell per capability.

``matrix.json`` is the source of truth and is rewritten (atomically) each time
a row finishes, so an interrupted sweep keeps every finished row; the
Markdown table, the PNG grid (:mod:`.png`) and the HTML page (:mod:`.html`)
are rendered from it.  Shard reports merge into one by kernel name.

Fields were added over time (a cell's seconds, log and verifier message, a
row's console tail); every reader takes their absence as "not recorded", so
a matrix.json written before them still loads.
"""

from __future__ import annotations

import enum
import json
import os
import re
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .capabilities import by_name, capabilities, column_title

REPORT_JSON = "matrix.json"
REPORT_MD = "matrix.md"
REPORT_PNG = "matrix.png"
REPORT_HTML = "matrix.html"
#: Beside a guest's capability report: what the tests recorded of the kernel
#: (record_property), written by the pytest plugin.
FACTS_FILE = "facts.json"
#: The verdict of a column none of whose tests has finished.
PENDING = "pending"


class CellVerdict(enum.StrEnum):
    PASS = "pass"  #: every test of the column passed
    FAIL = "fail"  #: a test failed, or the kernel log showed a splat
    SKIP = "skip"  #: the kernel lacks what the column needs (the detail says what)
    PANIC = "panic"  #: the guest kernel panicked
    TIMEOUT = "timeout"  #: the guest did not finish in time
    ERROR = "error"  #: the harness or the kernel could not be set up
    NOT_AVAILABLE = "n/a"  #: the kernel cannot be had here (the detail says what is known)


class ReportError(ConfigError):
    """The report could not be read (bad input: exit 2 from the CLI)."""


@dataclass(slots=True)
class Cell:
    verdict: CellVerdict
    detail: str = ""
    #: seconds the column's tests took (setup, call and teardown), when they ran
    seconds: float | None = None
    #: what explains a failure: the end of the first failing test's report (its
    #: traceback and captured output), or the kernel log's splats
    log: str = ""
    #: what the BPF verifier said when a load failed (libbpf's last lines)
    verifier: str = ""

    def to_json(self) -> dict[str, Any]:
        """The verdict and detail always; the later fields only when recorded,
        which keeps passing cells (most of them) two keys long."""
        data: dict[str, Any] = {"verdict": str(self.verdict), "detail": self.detail}
        if self.seconds is not None:
            data["seconds"] = self.seconds
        if self.log:
            data["log"] = self.log
        if self.verifier:
            data["verifier"] = self.verifier
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cell:
        seconds = data.get("seconds")
        return cls(
            CellVerdict(data["verdict"]),
            str(data.get("detail", "")),
            float(seconds) if seconds is not None else None,
            str(data.get("log", "")),
            str(data.get("verifier", "")),
        )


@dataclass(slots=True)
class KernelRow:
    name: str
    version: str
    source: str
    available: bool
    boot_s: float | None = None
    wall_s: float | None = None
    cells: dict[str, Cell] = field(default_factory=dict)
    #: why the row is what it is (e.g. the prediction for an unavailable kernel)
    note: str = ""
    #: the object variant the tracer chose when it ran on this kernel
    variant: str = ""
    #: the static prediction for this kernel: {"variant", "loads", "reasons"}
    predicted: dict[str, Any] | None = None
    #: the last lines of the guest's console (the host row: of its test run)
    log_tail: str = ""

    def prediction_agrees(self) -> bool | None:
        """Did the booted kernel do what was predicted?  None: nothing to compare."""
        attach = self.cells.get("attach")
        if not self.available or self.predicted is None or attach is None:
            return None
        if attach.verdict not in (CellVerdict.PASS, CellVerdict.FAIL):
            return None  # the guest died before telling
        loaded = attach.verdict is CellVerdict.PASS
        if loaded != self.predicted["loads"]:
            return False
        return not self.variant or self.variant == self.predicted["variant"]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["cells"] = {k: c.to_json() for k, c in self.cells.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KernelRow:
        cells = {k: Cell.from_json(c) for k, c in data.get("cells", {}).items()}
        return cls(
            name=data["name"],
            version=data.get("version", ""),
            source=data.get("source", ""),
            available=bool(data.get("available")),
            boot_s=data.get("boot_s"),
            wall_s=data.get("wall_s"),
            cells=cells,
            note=data.get("note", ""),
            variant=data.get("variant", ""),
            predicted=data.get("predicted"),
            log_tail=data.get("log_tail", ""),
        )

    @property
    def series(self) -> str:
        """``5.10`` for 5.10.237, debian-5.10 or 5.10-nobtf; ``host`` for the host;
        ``other`` for a kernel that says no version (a row that could not be set up)."""
        if self.name == "host":
            return "host"
        for text in (self.version, self.name.removeprefix("debian-")):
            match = _SERIES.match(text)
            if match:
                return f"{match.group(1)}.{match.group(2)}"
        return "other"


_SERIES = re.compile(r"^(\d+)\.(\d+)")


def _prediction_text(row: KernelRow) -> str:
    if row.predicted is None:
        return ""
    verb = "loads " if row.predicted["loads"] else "does not load "
    text = verb + str(row.predicted["variant"])
    agrees = row.prediction_agrees()
    if agrees is False:
        return f"**{text}, but {row.variant or 'the verdict'} disagrees**"
    return text + (" ✓" if agrees else "")


def _version_key(row: KernelRow) -> tuple[int, tuple[int, ...], str]:
    if row.name == "host":
        return (1, (), "")
    parts = tuple(int(p) for p in row.version.replace("-", ".").split(".")[:3] if p.isdigit())
    return (0, parts, row.name)


@dataclass(slots=True)
class Report:
    kernels: list[KernelRow] = field(default_factory=list)

    def add(self, row: KernelRow) -> None:
        self.kernels = [r for r in self.kernels if r.name != row.name] + [row]
        self.kernels.sort(key=_version_key)

    def to_json(self) -> dict[str, Any]:
        return {
            "capabilities": [asdict(c) for c in capabilities()],
            "kernels": [row.to_json() for row in self.kernels],
        }

    @classmethod
    def load(cls, directory: Path) -> Report:
        """The report of a report directory (its matrix.json)."""
        return cls.load_file(directory / REPORT_JSON)

    @classmethod
    def load_file(cls, path: Path) -> Report:
        """A matrix.json; a directory stands for the matrix.json in it.

        Raises:
            ReportError: the file is missing, unreadable or not a matrix report.
        """
        if path.is_dir():
            path = path / REPORT_JSON
        try:
            text = path.read_bytes()  # json.loads decodes, and a decoding error is a ValueError
        except OSError as exc:
            raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ReportError(f"cannot read {path}: not JSON ({exc})") from None
        try:
            rows = [KernelRow.from_json(row) for row in data["kernels"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            why = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ReportError(f"cannot read {path}: not a matrix report ({why})") from None
        report = cls()
        for row in rows:
            report.add(row)
        return report

    @classmethod
    def merge(cls, directories: list[Path]) -> Report:
        """Join shard reports; a kernel that ran in any shard beats an unavailable row."""
        merged = cls()
        for directory in directories:
            for row in cls.load(directory).kernels:
                known = next((r for r in merged.kernels if r.name == row.name), None)
                if (
                    known is None
                    or (row.available and not known.available)
                    or (row.available == known.available and len(row.cells) > len(known.cells))
                ):
                    merged.add(row)
        return merged

    def columns(self) -> list[str]:
        used = {name for row in self.kernels for name in row.cells}
        return [c.name for c in capabilities() if c.name in used] + sorted(used - set(by_name()))

    # -- rendering ---------------------------------------------------------

    def markdown(self) -> str:
        columns = self.columns()
        head = [
            "kernel",
            "version",
            "boot s",
            "predicted",
            *(column_title(c) for c in columns),
        ]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for row in self.kernels:
            boot = f"{row.boot_s:.1f}" if row.boot_s is not None else ""
            cells = [str(row.cells[c].verdict) if c in row.cells else "" for c in columns]
            predicted = _prediction_text(row)
            lines.append("| " + " | ".join([row.name, row.version, boot, predicted, *cells]) + " |")
        notes = [f"- **{row.name}**: {row.note}" for row in self.kernels if row.note]
        failures = [
            f"- **{row.name}** / {c}: {cell.verdict} — {cell.detail}"
            for row in self.kernels
            for c, cell in row.cells.items()
            if cell.verdict not in (CellVerdict.PASS, CellVerdict.NOT_AVAILABLE)
        ]
        legend = [
            f"- `{c.name}` ({c.title}): {c.description}"
            for c in capabilities()
            if c.name in columns
        ]
        out = ["# libtrace kernel matrix", "", *lines, ""]
        if failures:
            out += ["## Cells that did not pass", "", *failures, ""]
        if notes:
            out += ["## Notes", "", *notes, ""]
        return "\n".join([*out, "## Columns", "", *legend, ""])


def write_json_atomic(path: Path, data: object) -> None:
    """Replace ``path`` with ``data`` as JSON: a reader sees the old or the new, never half."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


class ReportWriter:
    """Keeps a report on disk, rewritten atomically as each row lands."""

    def __init__(self, directory: Path, report: Report | None = None) -> None:
        self.directory = directory
        self.report = report or Report()
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)

    def add(self, row: KernelRow) -> None:
        with self._lock:
            self.report.add(row)
            self._write_json()

    def _write_json(self) -> None:
        write_json_atomic(self.directory / REPORT_JSON, self.report.to_json())

    def finish(self) -> None:
        """Write every format (JSON, Markdown, PNG, HTML)."""
        with self._lock:
            self._write_json()
            render(self.directory, self.report)


def render(
    directory: Path, report: Report, previous: Report | None = None, previous_label: str = ""
) -> None:
    """Write matrix.md, matrix.png and matrix.html of ``report`` into ``directory``
    (matrix.json is left as it is); the page lists the cells changed since
    ``previous`` when given (``previous_label`` names it)."""
    from . import html, png  # Pillow and the page only when rendering

    (directory / REPORT_MD).write_text(report.markdown(), encoding="utf-8")
    png.draw(report, directory / REPORT_PNG)
    page = html.page(report, previous, previous_label)
    (directory / REPORT_HTML).write_text(page, encoding="utf-8")

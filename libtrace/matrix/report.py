"""The matrix report: a row per kernel, a cell per capability.

``matrix.json`` is the source of truth and is rewritten (atomically) each time
a row finishes, so an interrupted sweep keeps every finished row; the
Markdown table and the PNG grid are rendered from it.  Shard reports merge
into one by kernel name.
"""

from __future__ import annotations

import enum
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .capabilities import by_name, capabilities, column_title

REPORT_JSON = "matrix.json"
REPORT_MD = "matrix.md"
REPORT_PNG = "matrix.png"
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


#: Colours of the PNG grid, by verdict.
COLOURS = {
    CellVerdict.PASS: (46, 160, 67),
    CellVerdict.FAIL: (207, 34, 46),
    CellVerdict.SKIP: (191, 135, 0),
    CellVerdict.PANIC: (130, 20, 120),
    CellVerdict.TIMEOUT: (160, 80, 20),
    CellVerdict.ERROR: (90, 90, 90),
    CellVerdict.NOT_AVAILABLE: (200, 200, 200),
}


class ReportError(ConfigError):
    """The report could not be read (bad input: exit 2 from the CLI)."""


@dataclass(slots=True)
class Cell:
    verdict: CellVerdict
    detail: str = ""


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
        data["cells"] = {
            k: {"verdict": str(c.verdict), "detail": c.detail} for k, c in self.cells.items()
        }
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KernelRow:
        cells = {
            k: Cell(CellVerdict(c["verdict"]), c.get("detail", ""))
            for k, c in data.get("cells", {}).items()
        }
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
        )


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
        path = directory / REPORT_JSON
        try:
            data = json.loads(path.read_text())
            rows = [KernelRow.from_json(row) for row in data["kernels"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ReportError(f"cannot read {path}: {exc}") from None
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

    def png(self, path: Path) -> None:
        from PIL import Image, ImageDraw  # only the picture needs Pillow

        columns = self.columns()
        cell_w, cell_h, label_w, head_h = 74, 22, 150, 40
        width = label_w + cell_w * max(1, len(columns))
        height = head_h + cell_h * max(1, len(self.kernels)) + cell_h
        image = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(image)
        for i, name in enumerate(columns):
            title = column_title(name)
            draw.text((label_w + i * cell_w + 3, 12), title[:12], fill="black")
        for j, row in enumerate(self.kernels):
            y = head_h + j * cell_h
            draw.text((4, y + 5), row.name[:22], fill="black")
            for i, name in enumerate(columns):
                cell = row.cells.get(name)
                if cell is None:
                    continue
                x = label_w + i * cell_w
                draw.rectangle(
                    [x + 1, y + 1, x + cell_w - 2, y + cell_h - 2], fill=COLOURS[cell.verdict]
                )
                draw.text((x + 6, y + 5), str(cell.verdict), fill="white")
        legend = "  ".join(str(v) for v in CellVerdict)
        draw.text((4, height - cell_h + 5), f"verdicts: {legend}", fill="black")
        image.save(path)


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
        """Write every format (JSON, Markdown, PNG)."""
        with self._lock:
            self._write_json()
            (self.directory / REPORT_MD).write_text(self.report.markdown())
            self.report.png(self.directory / REPORT_PNG)

"""The cells that changed between two matrix reports.

A cell changed when its verdict did; a cell that is in one report only (a
kernel or a column added or dropped) changed from or to nothing.  Details
and timings are not compared: they differ on every run ("3 passed in 41 s")
and would bury the verdicts that moved.
"""

from __future__ import annotations

from dataclasses import dataclass

from .capabilities import column_title
from .report import CellVerdict, Report

#: How a cell missing from one of the two reports is written.
ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class CellChange:
    kernel: str
    capability: str
    old: CellVerdict | None  #: None: the old report had no such cell
    new: CellVerdict | None  #: None: the new report has no such cell

    def line(self) -> str:
        """``debian-5.10 / TCP: pass → fail``."""
        return (
            f"{self.kernel} / {column_title(self.capability)}: "
            f"{self.old or ABSENT} → {self.new or ABSENT}"
        )


def changes(old: Report, new: Report) -> list[CellChange]:
    """Every cell whose verdict differs, in the new report's row and column
    order (rows and columns only the old report has come last)."""
    old_rows = {row.name: row for row in old.kernels}
    new_rows = {row.name: row for row in new.kernels}
    names = [*new_rows, *(name for name in old_rows if name not in new_rows)]
    columns = Report(kernels=[*new.kernels, *old.kernels]).columns()
    found = []
    for name in names:
        before, after = old_rows.get(name), new_rows.get(name)
        for column in columns:
            was = before.cells[column].verdict if before and column in before.cells else None
            now = after.cells[column].verdict if after and column in after.cells else None
            if was != now:
                found.append(CellChange(name, column, was, now))
    return found

"""What the matrix page, the matrix picture and the console share: how a verdict
looks, how the rows group, what a kernel is called.

The colours are the Okabe-Ito palette (Okabe and Ito, "Color Universal
Design", 2008), chosen to stay apart under the common colour-vision
deficiencies; every cell also carries its verdict as a symbol and a word, so
no verdict is told by colour alone (WCAG 1.4.1).  The ink of each colour is
the one of black and white with the higher contrast on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .report import CellVerdict, KernelRow, Report

RGB = tuple[int, int, int]


def css(colour: RGB) -> str:
    """``#rrggbb``."""
    return "#" + "".join(f"{part:02x}" for part in colour)


@dataclass(frozen=True, slots=True)
class Look:
    colour: RGB
    ink: RGB  #: the text colour on ``colour``
    #: beside the word in the page; glyphs DejaVu Sans has (Debian's default
    #: font), and the picture, whose font may have none of them, shows the word alone
    symbol: str
    meaning: str  #: the legend's line



BLACK: RGB = (0, 0, 0)
WHITE: RGB = (255, 255, 255)
#: Okabe-Ito, plus a light grey for "nothing to say" (n/a is not a result).
LOOKS: dict[CellVerdict, Look] = {
    CellVerdict.PASS: Look((0, 158, 115), BLACK, "✓", "every test of the column passed"),
    CellVerdict.FAIL: Look((213, 94, 0), WHITE, "✗", "a test failed, or the kernel logged a splat"),
    CellVerdict.SKIP: Look((240, 228, 66), BLACK, "–", "the kernel lacks what the column needs"),
    CellVerdict.PANIC: Look((204, 121, 167), BLACK, "☠", "the guest kernel panicked"),
    CellVerdict.TIMEOUT: Look((230, 159, 0), BLACK, "◷", "the guest did not finish in time"),
    CellVerdict.ERROR: Look((0, 114, 178), WHITE, "⚠", "the harness or kernel could not be set up"),
    CellVerdict.NOT_AVAILABLE: Look((221, 221, 221), BLACK, "○", "nothing ran: no such kernel"),
}
#: Sky blue, the palette's last colour: what marks a prediction and a change.
PREDICTION: RGB = (86, 180, 233)

BOOTED = "booted"
PREDICTED = "predicted only (not booted)"


def short_name(name: str) -> str:
    """A kernel's name as a label: a built kernel's directory without its parents and
    its cache key (``…/6.1.0-btf_my-tree_0123…`` -> ``6.1.0-btf``)."""
    if "/" not in name:
        return name
    return name.rstrip("/").rsplit("/", 1)[-1].split("_", 1)[0]


def groups(report: Report) -> Iterator[tuple[str, list[KernelRow]]]:
    """The rows in two groups, booted first, each in the report's order (by
    version, so a series' rows stay together); an empty group is left out."""
    for title, available in ((BOOTED, True), (PREDICTED, False)):
        rows = [row for row in report.kernels if row.available is available]
        if rows:
            yield title, rows


def prediction_mark(row: KernelRow) -> str:
    """The prediction in a few ASCII characters, for a cell of the picture and
    the page: ``loads``/``no load`` for a row that was not booted, and for a
    booted one whether it did what was predicted."""
    if row.predicted is None:
        return ""
    agrees = row.prediction_agrees()
    if agrees is None:
        return "loads" if row.predicted["loads"] else "does not load"
    return "as predicted" if agrees else "NOT as predicted"


def prediction_text(row: KernelRow) -> str:
    """The prediction in words: what loads, and why not when it does not."""
    if row.predicted is None:
        return ""
    verb = "loads" if row.predicted["loads"] else "does not load"
    reasons = "; ".join(str(reason) for reason in row.predicted.get("reasons", ()))
    return f"{verb} {row.predicted['variant']}" + (f": {reasons}" if reasons else "")

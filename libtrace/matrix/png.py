"""matrix.png: the grid a CI summary shows, drawn with Pillow.

Rows in two groups, booted kernels first, then the kernels that were only
predicted (one hatched band each, saying the prediction); a rule between two
series; a prediction column; each cell its verdict as a word on its
Okabe-Ito colour (:mod:`.layout`); and a legend that says what each colour,
the hatching and the prediction marks mean.  The words are ASCII: Pillow's
built-in font has no symbols, and no other font is assumed.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .capabilities import column_title
from .layout import (
    BLACK,
    LOOKS,
    PREDICTION,
    WHITE,
    groups,
    prediction_mark,
    prediction_text,
    short_name,
)
from .report import CellVerdict, KernelRow, Report

#: Pixel sizes: a capability column, a row, the kernel, series and prediction columns.
CELL_W, CELL_H = 82, 22
KERNEL_W, SERIES_W, PREDICTION_W = 150, 56, 130
HEAD_H, TITLE_H = 26, 30
FONT_SIZE = 12
#: The hatching of a kernel that was not booted: grey lines, this far apart.
HATCH, HATCH_STEP = (185, 185, 185), 6
RULE = (120, 120, 120)
GROUP_BAND = (235, 235, 235)


def draw(report: Report, path: Path) -> None:
    """Draw ``report`` into the PNG file ``path``."""
    columns = report.columns()
    left = KERNEL_W + SERIES_W + PREDICTION_W
    width = left + CELL_W * max(1, len(columns))
    rows = sum(len(rows) + 1 for _title, rows in groups(report))  # +1: the group's band
    legend_lines = len(LOOKS) + 2
    height = TITLE_H + HEAD_H + CELL_H * (rows + legend_lines + 1)
    image = Image.new("RGB", (width, height), WHITE)
    pen = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=FONT_SIZE)

    pen.text((4, 8), "libtrace kernel matrix", fill=BLACK, font=font)
    y = TITLE_H
    for x, text in ((4, "kernel"), (KERNEL_W, "series"), (KERNEL_W + SERIES_W, "prediction")):
        pen.text((x + 2, y + 6), text, fill=BLACK, font=font)
    for i, name in enumerate(columns):
        pen.text((left + i * CELL_W + 3, y + 6), _fit(column_title(name), CELL_W, font),
                 fill=BLACK, font=font)  # fmt: skip
    y += HEAD_H
    for title, group in groups(report):
        pen.rectangle([0, y, width, y + CELL_H - 1], fill=GROUP_BAND)
        pen.text((4, y + 5), f"{title}: {len(group)}", fill=BLACK, font=font)
        y += CELL_H
        series = None
        for row in group:
            if series is not None and row.series != series:
                pen.line([0, y, width, y], fill=RULE)  # a new series begins
            _row(pen, font, row, columns, y, show_series=row.series != series)
            series = row.series
            y += CELL_H
    _legend(pen, font, y + CELL_H // 2)
    image.save(path)


def _row(
    pen: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    row: KernelRow,
    columns: list[str],
    y: int,
    *,
    show_series: bool,
) -> None:
    left = KERNEL_W + SERIES_W + PREDICTION_W
    pen.text((4, y + 5), _fit(short_name(row.name), KERNEL_W, font), fill=BLACK, font=font)
    if show_series:
        pen.text((KERNEL_W + 2, y + 5), row.series, fill=BLACK, font=font)
    mark = prediction_mark(row)
    if mark:
        agrees = row.prediction_agrees() is not False
        x = KERNEL_W + SERIES_W
        pen.rectangle([x + 1, y + 1, x + PREDICTION_W - 2, y + CELL_H - 2],
                      fill=PREDICTION if agrees else LOOKS[CellVerdict.FAIL].colour)  # fmt: skip
        ink = BLACK if agrees else LOOKS[CellVerdict.FAIL].ink
        pen.text((x + 5, y + 5), _fit(mark, PREDICTION_W, font), fill=ink, font=font)
    if not row.available and all(
        c.verdict is CellVerdict.NOT_AVAILABLE for c in row.cells.values()
    ):
        # Not booted: one hatched band, not a row of identical grey cells.
        _hatch(pen, left + 1, y + 1, left + CELL_W * len(columns) - 2, y + CELL_H - 2)
        text = "not booted" + (f"; predicted: {prediction_text(row)}" if mark else "")
        pen.text((left + 8, y + 5), _fit(text, CELL_W * len(columns), font), fill=BLACK,
                 font=font)  # fmt: skip
        return
    for i, name in enumerate(columns):
        cell = row.cells.get(name)
        if cell is None:
            continue
        look = LOOKS[cell.verdict]
        x = left + i * CELL_W
        pen.rectangle([x + 1, y + 1, x + CELL_W - 2, y + CELL_H - 2], fill=look.colour)
        pen.text((x + 6, y + 5), str(cell.verdict), fill=look.ink, font=font)


def _hatch(pen: ImageDraw.ImageDraw, x0: int, y0: int, x1: int, y1: int) -> None:
    """Diagonal lines over the box, clipped to it."""
    height = y1 - y0
    for start in range(x0 - height, x1, HATCH_STEP):
        a = (max(start, x0), y1 - (max(start, x0) - start))
        b = (min(start + height, x1), y0 + (start + height - min(start + height, x1)))
        pen.line([a, b], fill=HATCH)


def _legend(
    pen: ImageDraw.ImageDraw, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, y: int
) -> None:
    for verdict, look in LOOKS.items():
        pen.rectangle([4, y + 2, 4 + CELL_W - 4, y + CELL_H - 3], fill=look.colour)
        pen.text((10, y + 5), str(verdict), fill=look.ink, font=font)
        pen.text((CELL_W + 10, y + 5), look.meaning, fill=BLACK, font=font)
        y += CELL_H
    _hatch(pen, 4, y + 2, CELL_W, y + CELL_H - 3)
    pen.text((CELL_W + 10, y + 5), "not booted here: the row holds the static prediction only",
             fill=BLACK, font=font)  # fmt: skip
    y += CELL_H
    pen.rectangle([4, y + 2, CELL_W, y + CELL_H - 3], fill=PREDICTION)
    pen.text((CELL_W + 10, y + 5),
             "prediction: would the tracer load (no boot); on a booted kernel, did it do so",
             fill=BLACK, font=font)  # fmt: skip


def _fit(text: str, width: int, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> str:
    """``text`` cut to ``width`` pixels, with an ellipsis if cut."""
    if font.getlength(text) <= width - 8:
        return text
    while text and font.getlength(text + "...") > width - 8:
        text = text[:-1]
    return text + "..."

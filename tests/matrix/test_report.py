"""The matrix report: JSON contract, incremental writes, merge, renderings."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from libtrace.matrix import png
from libtrace.matrix.capabilities import capabilities
from libtrace.matrix.layout import LOOKS
from libtrace.matrix.report import (
    REPORT_JSON,
    Cell,
    CellVerdict,
    KernelRow,
    Report,
    ReportError,
    ReportWriter,
)


def row(name: str, version: str, verdict: CellVerdict = CellVerdict.PASS, **kw) -> KernelRow:
    cells = {c.name: Cell(verdict, f"{verdict} detail") for c in capabilities()[:3]}
    return KernelRow(
        name=name,
        version=version,
        source="test",
        available=True,
        boot_s=3.5,
        wall_s=60.0,
        cells=cells,
        **kw,
    )


def test_each_row_is_on_disk_as_soon_as_it_is_added(tmp_path):
    writer = ReportWriter(tmp_path)
    writer.add(row("debian-6.1", "6.1.150"))
    data = json.loads((tmp_path / REPORT_JSON).read_text())
    assert [k["name"] for k in data["kernels"]] == ["debian-6.1"]
    writer.add(row("debian-5.10", "5.10.237", CellVerdict.FAIL))
    data = json.loads((tmp_path / REPORT_JSON).read_text())
    # the contract of matrix.json
    assert [k["name"] for k in data["kernels"]] == ["debian-5.10", "debian-6.1"]
    kernel = data["kernels"][0]
    assert {"name", "version", "source", "available", "boot_s", "wall_s", "cells"} <= set(kernel)
    assert kernel["cells"]["attach"] == {"verdict": "fail", "detail": "fail detail"}
    assert not list(tmp_path.glob("*.tmp"))


def test_finish_renders_markdown_and_a_png_grid(tmp_path):
    writer = ReportWriter(tmp_path)
    writer.add(row("host", "6.18.0"))
    writer.add(row("debian-5.10", "5.10.237", CellVerdict.PANIC, note="Kernel panic - not syncing"))
    writer.add(
        KernelRow(
            name="4.14",
            version="4.14",
            source="seed",
            available=False,
            cells={"attach": Cell(CellVerdict.NOT_AVAILABLE, "")},
            note="predicted",
        )
    )
    writer.finish()
    markdown = (tmp_path / "matrix.md").read_text()
    assert markdown.index("| 4.14 ") < markdown.index("| debian-5.10 ") < markdown.index("| host ")
    assert "panic" in markdown and "Kernel panic - not syncing" in markdown
    image = Image.open(tmp_path / "matrix.png")
    assert image.size[0] > 300 and image.size[1] > 80
    counts = {colour: count for count, colour in image.getcolors(maxcolors=1 << 20)}
    cell_pixels = (png.CELL_W - 2) * (png.CELL_H - 2) // 2  # at least half a cell, less its text
    # The host's three PASS cells and debian-5.10's three PANIC cells, plus the legend's swatches
    # of every verdict; the 4.14 row predicted only: its band is hatched, not a cell colour.
    assert counts[LOOKS[CellVerdict.PASS].colour] > 3 * cell_pixels
    assert counts[LOOKS[CellVerdict.PANIC].colour] > 3 * cell_pixels
    assert all(counts.get(look.colour, 0) > cell_pixels for look in LOOKS.values())
    # Without the 4.14 row only the legend's swatch is hatched.
    booted = Report([r for r in writer.report.kernels if r.available])
    png.draw(booted, tmp_path / "booted.png")
    alone = {c: n for n, c in Image.open(tmp_path / "booted.png").getcolors(maxcolors=1 << 20)}
    assert counts[png.HATCH] - alone[png.HATCH] > 3 * png.CELL_W


def test_merge_joins_shards_and_prefers_rows_that_ran(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    ReportWriter(first).add(row("debian-6.1", "6.1.150"))
    shard = ReportWriter(second)
    shard.add(row("debian-6.12", "6.12.50"))
    shard.add(KernelRow(name="debian-6.1", version="", source="x", available=False))
    merged = Report.merge([first, second])
    assert [r.name for r in merged.kernels] == ["debian-6.1", "debian-6.12"]
    assert merged.kernels[0].available


def test_a_corrupt_report_is_a_clear_error(tmp_path):
    (tmp_path / REPORT_JSON).write_text("{not json")
    with pytest.raises(ReportError, match="cannot read"):
        Report.load(tmp_path)


def test_the_console_table_keeps_every_capability_name_beside_long_kernel_paths() -> None:
    """A built kernel's row is named by its path: its header is shortened and folds,
    and the capability column never gives way (it once shrank to nothing)."""
    from rich.console import Console

    from libtrace.matrix.capabilities import column_title
    from libtrace.matrix.cli import print_report
    from libtrace.matrix.layout import short_name

    from .sample import sample_report

    report = sample_report()
    long_name = "/root/.cache/libtrace/kernels/built/6.1.0-btf_my-tree_0123456789ab"
    report.add(KernelRow(name=long_name, version="6.1.0", source="user", available=True,
                         boot_s=1.5, cells={c.name: Cell(CellVerdict.PASS, "1 passed")
                                            for c in capabilities()}))  # fmt: skip
    console = Console(record=True, width=160)
    print_report(report, console)
    text = console.export_text()
    assert "6.1.0-btf" in text and long_name not in text
    assert short_name(long_name) == "6.1.0-btf" and short_name("debian-6.1") == "debian-6.1"
    body = [line for line in text.splitlines() if line.startswith("│")]
    for capability in capabilities():
        assert any(line.startswith(f"│ {column_title(capability.name)} ") for line in body), text

"""``libtrace matrix report --compare OLD.json``: exactly the cells that changed."""

from __future__ import annotations

import json
import random
from html.parser import HTMLParser
from pathlib import Path

import pytest

from libtrace.cli import main
from libtrace.errors import ExitCode
from libtrace.matrix.capabilities import column_title
from libtrace.matrix.compare import changes
from libtrace.matrix.report import REPORT_HTML, REPORT_JSON, Cell, CellVerdict, Report
from libtrace.matrix.report import write_json_atomic as write_json

from .sample import sample_report


def save(report: Report, directory: Path) -> Path:
    directory.mkdir()
    write_json(directory / REPORT_JSON, report.to_json())
    return directory / REPORT_JSON


class _Changed(HTMLParser):
    """The page's changed cells (``td.changed``) and the rows of its list of changes."""

    def __init__(self) -> None:
        super().__init__()
        self.cells = 0
        self.listed = 0
        self._in_changes = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "td" and ("class", "changed") in attrs:
            self.cells += 1
        if tag == "section" and ("id", "changes") in attrs:
            self._in_changes = True
        if tag == "tr" and self._in_changes:
            self.listed += 1  # the head's row too

    def handle_endtag(self, tag: str) -> None:
        self._in_changes = self._in_changes and tag != "section"


def run_report(
    new: Path, old: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[str], str]:
    """The exit code, the listed changes, and the line that announces them."""
    code = main(["matrix", "report", str(new), "--compare", str(old)])
    lines = capsys.readouterr().out.splitlines()
    head = next(i for i, line in enumerate(lines) if " changed since " in line)
    listed = [line.strip() for line in lines[head + 1 :] if line.startswith("  ")]
    return code, listed, lines[head]


@pytest.mark.parametrize("count", [0, 1, 5, 12])
def test_compare_lists_exactly_the_cells_whose_verdict_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], count: int
) -> None:
    old, new = sample_report(), sample_report()
    places = [(row, name) for row in new.kernels for name in row.cells]
    rng = random.Random(count)
    chosen = rng.sample(range(len(places)), count)
    expected = set()
    for row, name in (places[i] for i in chosen):
        was = row.cells[name].verdict
        now = rng.choice([v for v in CellVerdict if v is not was])
        row.cells[name] = Cell(now, "changed", 1.0, "a new log")
        expected.add(f"{row.name} / {column_title(name)}: {was} → {now}")
    # Same verdict, another detail, timing and log: not a change.
    row, name = next(place for i, place in enumerate(places) if i not in chosen)
    row.cells[name] = Cell(row.cells[name].verdict, "4 passed", 99.0, "another log")
    old_json = save(old, tmp_path / "old")
    save(new, tmp_path / "new")

    code, listed, head = run_report(tmp_path / "new", old_json, capsys)

    assert code == ExitCode.FAILED  # the sample has failing and panicking cells
    assert sorted(listed) == sorted(expected) and len(listed) == count
    assert head.startswith(f"{count} {'cell' if count == 1 else 'cells'} changed since {old_json}")
    page = _Changed()
    page.feed((tmp_path / "new" / REPORT_HTML).read_text())
    assert page.cells == count
    assert page.listed == (count + 1 if count else 0)  # its head row, then one per change


def test_a_kernel_or_column_in_one_report_only_changed_from_or_to_absent() -> None:
    old, new = sample_report(), sample_report()
    host = next(row for row in new.kernels if row.name == "host")
    del host.cells["attach"]
    new.kernels = [row for row in new.kernels if row.name != "4.19"]
    found = [change.line() for change in changes(old, new)]
    assert found == ["host / attach: pass → absent",
                     *(f"4.19 / {column_title(name)}: n/a → absent" for name in old.columns())]
    back = [change.line() for change in changes(new, old)]  # in the old row order then
    assert len(back) == len(found) and back[-1] == "host / attach: absent → pass"


def test_an_old_report_without_the_new_fields_still_loads(tmp_path: Path) -> None:
    """matrix.json from before the page: cells of verdict and detail only, rows without log_tail."""
    old = {"kernels": [{"name": "debian-6.1", "version": "6.1.150", "source": "x",
                        "available": True, "cells": {"attach": {"verdict": "fail",
                                                                "detail": "1 failed: x"}}}]}
    (tmp_path / REPORT_JSON).write_text(json.dumps(old))  # fmt: skip
    report = Report.load(tmp_path)
    cell = report.kernels[0].cells["attach"]
    assert (cell.verdict, cell.seconds, cell.log, cell.verifier) == (CellVerdict.FAIL, None, "", "")
    assert report.kernels[0].log_tail == ""
    assert main(["matrix", "report", str(tmp_path)]) == ExitCode.FAILED
    assert "1 failed: x" in (tmp_path / REPORT_HTML).read_text()


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "No such file or directory"), ("{not json", "not JSON"),
     ('{"kernels": [1]}', "not a matrix report"), ("[]", "not a matrix report")],
)  # fmt: skip
def test_a_bad_compare_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, says: str
) -> None:
    save(sample_report(), tmp_path / "new")
    old = tmp_path / "old.json"
    if content is not None:
        old.write_text(content)
    with pytest.raises(SystemExit) as exit_:
        main(["matrix", "report", str(tmp_path / "new"), "--compare", str(old)])
    assert exit_.value.code == ExitCode.USAGE
    error = capsys.readouterr().err
    assert error.startswith(f"libtrace: error: cannot read {old}: {says}")
    assert len(error.splitlines()) == 1
    assert not (tmp_path / "new" / REPORT_HTML).exists()  # nothing written on bad input

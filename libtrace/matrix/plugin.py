"""A pytest plugin that files each kernel-level test under its matrix column.

Loaded inside a guest (``-p libtrace.matrix.plugin --capability-report F``),
it rewrites F after every test with the verdict of each column so far, so a
guest that panics half way still leaves the columns it finished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .report import FACTS_FILE, PENDING, write_json_atomic

REPORTER_KEY = pytest.StashKey["CapabilityReporter"]()
#: Characters of a failure message kept in a cell's detail.
DETAIL_CHARS = 300


@dataclass
class _Column:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)

    def cell(self) -> dict[str, str]:
        if self.failed:
            return {"verdict": "fail", "detail": f"{self.failed} failed: {self.failures[0]}"}
        if self.passed:
            detail = f"{self.passed} passed" + (f", {self.skipped} skipped" if self.skipped else "")
            return {"verdict": "pass", "detail": detail}
        if self.skipped:
            return {"verdict": "skip", "detail": self.skips[0]}
        # Collected but not run yet: a guest that dies now leaves this.
        return {"verdict": PENDING, "detail": "not run"}


def column_of(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("variant_capability") or item.get_closest_marker("capability")
    return str(marker.args[0]) if marker else None


class CapabilityReporter:
    def __init__(self, path: Path) -> None:
        self.path = path
        #: what tests said of the kernel with record_property (e.g. the variant)
        self.facts: dict[str, object] = {}
        self.columns: dict[str, _Column] = {}
        self.column_by_nodeid: dict[str, str] = {}

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # After -k/-m deselection: only the columns that will run are reported.
        for item in session.items:
            column = column_of(item)
            if column is not None:
                self.column_by_nodeid[item.nodeid] = column
                self.columns.setdefault(column, _Column())
        self._write()

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and report.user_properties:
            self.facts.update(report.user_properties)
        column = self.columns.get(self.column_by_nodeid.get(report.nodeid, ""))
        if column is None:
            return
        test = report.nodeid.split("::", 1)[-1]
        if report.failed:
            column.failed += 1
            message = report.longreprtext.strip().splitlines()
            # The first "E" line is the exception and its message.
            first = next(
                (line[1:] for line in message if line.startswith("E ")),
                message[-1] if message else "",
            )
            column.failures.append(f"{test}: {first.strip()}"[:DETAIL_CHARS])
        elif report.skipped:
            column.skipped += 1
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            column.skips.append(reason.removeprefix("Skipped: ")[:DETAIL_CHARS])
        elif report.when == "call":
            column.passed += 1
        self._write()

    def _write(self) -> None:
        write_json_atomic(self.path, {name: col.cell() for name, col in self.columns.items()})
        write_json_atomic(self.path.with_name(FACTS_FILE), self.facts)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--capability-report",
        metavar="PATH",
        help="write each matrix column's verdict to PATH as JSON",
    )


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--capability-report", None)
    if path:
        reporter = CapabilityReporter(Path(path))
        config.stash[REPORTER_KEY] = reporter
        config.pluginmanager.register(reporter, "libtrace-capabilities")

"""A pytest plugin that files each kernel-level test under its matrix column.

Loaded inside a guest (``-p libtrace.matrix.plugin --capability-report F``),
it rewrites F after every test with the verdict of each column so far, so a
guest that panics half way still leaves the columns it finished.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .report import FACTS_FILE, PENDING, write_json_atomic

REPORTER_KEY = pytest.StashKey["CapabilityReporter"]()
#: Characters of a failure message kept in a cell's detail.
DETAIL_CHARS = 300
#: The end of the first failure's report kept as the cell's log: the assertion,
#: its context and the captured output's last lines, not a whole traceback.
LOG_LINES, LOG_CHARS = 40, 4000
#: A failed BPF load: BpfError's message, which ends with libbpf's last lines
#: (the verifier's verdict; see libtrace.tracer._libbpf.verifier_verdict).
VERIFIER = re.compile(r"load BPF object \S+ failed: .*")


@dataclass
class _Column:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    skips: list[str] = field(default_factory=list)
    #: every phase of every test of the column
    seconds: float = 0.0
    #: the end of the first failure's report, and a verifier message if any failure had one
    log: str = ""
    verifier: str = ""

    def cell(self) -> dict[str, object]:
        """A matrix cell as JSON (:meth:`libtrace.matrix.report.Cell.from_json` reads it)."""
        timing = {"seconds": round(self.seconds, 2)}
        if self.failed:
            cell: dict[str, object] = {
                "verdict": "fail",
                "detail": f"{self.failed} failed: {self.failures[0]}",
                "log": self.log,
                **timing,
            }
            return cell | ({"verifier": self.verifier} if self.verifier else {})
        if self.passed:
            detail = f"{self.passed} passed" + (f", {self.skipped} skipped" if self.skipped else "")
            return {"verdict": "pass", "detail": detail, **timing}
        if self.skipped:
            return {"verdict": "skip", "detail": self.skips[0], **timing}
        # Collected but not run yet: a guest that dies now leaves this.
        return {"verdict": PENDING, "detail": "not run"}

    def add_failure(self, test: str, report: pytest.TestReport) -> None:
        self.failed += 1
        message = report.longreprtext.strip().splitlines()
        # The first "E" line is the exception and its message.
        first = next(
            (line[1:] for line in message if line.startswith("E ")),
            message[-1] if message else "",
        )
        self.failures.append(f"{test}: {first.strip()}"[:DETAIL_CHARS])
        if not self.log:
            captured = [f"--- {title} ---\n{text}" for title, text in report.sections if text]
            lines = "\n".join([*message, *captured]).splitlines()[-LOG_LINES:]
            self.log = "\n".join(lines)[-LOG_CHARS:]
        # In the exception's lines only: the traceback's source lines may quote the message.
        found = (VERIFIER.search(line) for line in message if line.startswith("E "))
        verifier = next((match.group(0) for match in found if match), "")
        self.verifier = self.verifier or verifier[:LOG_CHARS]


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
        column.seconds += report.duration
        if report.failed:
            column.add_failure(test, report)
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

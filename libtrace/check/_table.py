"""The side-by-side table of one check: each kind of record, counted on the wire and per side.

Records whose summaries read the same (a hundred ``GET /index.html => 200``
of h2load, stream ids apart) and that agree everywhere are folded into one
row; a record that differs keeps a row of its own, so a difference is never
hidden in a fold.  The full records are in the JSON report.
"""

from __future__ import annotations

import json
from collections import Counter

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..output import summarize
from ._compare import Difference
from ._result import CheckResult, side_order

#: Characters of a row's label before it is cut.
LABEL_CHARS = 70
#: The narrowest a label column gets (terminals narrower than the counts need).
MIN_LABEL_CHARS = 12


def label(key: str) -> str:
    """``protocol request => response status`` of a protocol key, short."""
    record = json.loads(key)
    request, response = summarize(record)
    text = f"{record['protocol']} {request} => {response} [{record['status']}]"
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _counts(diff: Difference) -> tuple[Counter[str], Counter[str]]:
    """(trace, wire) multisets of one side's comparison."""
    return diff.matched + diff.only_left, diff.matched + diff.only_right


def rows(result: CheckResult) -> list[tuple[str, int, list[int], bool]]:
    """(label, wire count, per-side counts, agrees) rows, differences first."""
    sides = side_order(result.sides)
    counts = {side: _counts(result.sides[side]) for side in sides}
    wire = next(iter(counts.values()))[1] if counts else Counter()
    keys = set(wire).union(*(trace for trace, _ in counts.values()))
    folded: dict[tuple[str, bool], list[int]] = {}
    for key in keys:
        per_side = [counts[side][0][key] for side in sides]
        agrees = all(n == wire[key] for n in per_side)
        # Agreeing rows fold by label; differing ones stay apart (keyed by the key itself).
        slot = (label(key), True) if agrees else (key, False)
        total = folded.setdefault(slot, [0] * (len(sides) + 1))
        for i, n in enumerate([wire[key], *per_side]):
            total[i] += n
    out = [(label(k) if not ok else k, t[0], t[1:], ok) for (k, ok), t in folded.items()]
    return sorted(out, key=lambda row: (row[3], row[0]))


def render(result: CheckResult, console: Console) -> None:
    """Print the table and the verdict lines."""
    sides = side_order(result.sides)
    table = Table(title=f"libtrace check {result.scenario} ({result.backend}) at {result.server}")
    # On a narrow terminal the label gives way (ellipsis), never the counts: the
    # count columns have fixed widths and the label takes what is left (each
    # column has two spaces of padding, and one border more than columns).
    counts = ["pcap", *(f"trace {side}" for side in sides)]
    columns = len(counts) + 2
    left = console.width - sum(map(len, counts)) - 1 - 2 * columns - (columns + 1)
    table.add_column(escape("record (protocol request => response [status])"), no_wrap=True,
                     overflow="ellipsis", max_width=max(left, MIN_LABEL_CHARS))  # fmt: skip
    for header in counts:
        table.add_column(header, justify="right", no_wrap=True, width=len(header))
    table.add_column("", width=1)
    for text, wire, per_side, agrees in rows(result):
        mark = "[green]=[/]" if agrees else "[red]≠[/]"
        table.add_row(text, str(wire), *map(str, per_side), mark)
    console.print(table)
    for side in sides:
        diff = result.sides[side]
        console.print(
            f"{side}: {sum(diff.matched.values())} matched, "
            f"{sum(diff.only_left.values())} only in trace, "
            f"{sum(diff.only_right.values())} only in pcap",
            highlight=False,
        )
    console.print(f"lost: {result.lost} events; {result.events} traced", highlight=False)
    if result.missed:
        console.print(f"missed: the kernel skipped {result.missed} tracer program runs",
                      highlight=False)
    if not result.agrees:
        # Where a difference comes from is often in these (a hole, a desync, a cut).
        console.print(_pipeline(result), highlight=False)
    console.print(_attribution(result), highlight=False)
    console.print(_expected(result), highlight=False)
    verdict = "[green]AGREE[/]" if result.ok else "[red]DIFFER[/]"
    console.print(f"verdict: {verdict} ({result.seconds:.1f} s)")


def _attribution(result: CheckResult) -> str:
    parts = []
    for side, values in sorted(result.containers.items()):
        names = [f"{c['name']} ({c['id'][:12]})" if c else "none" for c in values]
        parts.append(f"{side} → {', '.join(names) or '-'}")
    ok = "right" if result.attribution_ok else "WRONG"
    return f"containers: {'; '.join(parts)} ({ok})"


def _expected(result: CheckResult) -> str:
    if result.expected is None:
        return f"expected records: none at {result.expected_path}"
    if result.expected.agrees:
        return f"expected records: match {result.expected_path}"
    return (f"expected records: differ from {result.expected_path} "
            f"({sum(result.expected.only_left.values())} only in this run, "
            f"{sum(result.expected.only_right.values())} only expected)")  # fmt: skip


def _pipeline(result: CheckResult) -> str:
    """The record pipeline's counters that are not zero."""
    counts = [f"{name} {value}" for name, value in result.pipeline.items() if value]
    return f"pipeline: {', '.join(counts) or 'no counts'}"

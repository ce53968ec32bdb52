"""``libtrace stat``'s output: rows as a rich table (live and final), or one JSON document.

The JSON document (``stat --json``, its schema in the README) is the rows'
:meth:`~.aggregate.Row.to_json` under what produced them: the dimensions,
the order, the records counted, the time the rates divide by.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .aggregate import Aggregator, Row

if TYPE_CHECKING:
    from rich.console import RenderableType

#: The fewest characters a line of a key (or another dimension) gets in the table.
KEY_MIN_CHARS = 12
#: Binary units of the bytes column.
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def milliseconds(ns: int | None) -> str:
    """A latency as the table shows it (``-`` without one)."""
    return "-" if ns is None else f"{ns / 1e6:.3f}"


def size(count: int) -> str:
    """Bytes in binary units, three significant figures (``12.3 KiB``)."""
    value = float(count)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{count} B" if unit == "B" else f"{value:.3g} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def table(rows: Sequence[Row], by: Sequence[str], caption: str | None = None) -> RenderableType:
    """The rows as a rich table: the dimensions, then count, rate, errors, latency, bytes;
    the caption is a line under it (as wide as the terminal, not the table)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    # One space between columns (the box's), the latency unit said once in the header:
    # so that on 80 columns the numbers keep their width and a key keeps at least
    # KEY_MIN_CHARS a line (folding onto more lines, never cut).
    out = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=0)
    widest = {name: max((len(row.group[i]) for row in rows), default=0)
              for i, name in enumerate(by)}  # fmt: skip
    for name in by:
        out.add_column(name, overflow="fold",
                       min_width=max(len(name), min(widest[name], KEY_MIN_CHARS)))  # fmt: skip
    for heading in ("count", "rate/s", "errors", "p50 ms", "p90", "p99", "max", "bytes"):
        out.add_column(heading, justify="right", no_wrap=True)
    for row in rows:
        rate = "-" if row.rate is None else f"{row.rate:.1f}"
        # "~": percentiles of a sample of the latencies (see aggregate.MAX_SAMPLES)
        mark = "" if row.exact else "~"
        p50, p90, p99 = (milliseconds(ns) + mark for ns in (row.p50_ns, row.p90_ns, row.p99_ns))
        # Text, not markup: a key's brackets ("[x]" in SQL, paths) are data.
        out.add_row(*map(Text, row.group), str(row.count), rate, str(row.errors), p50, p90, p99,
                    milliseconds(row.max_ns), size(row.bytes))
    return out if caption is None else Group(out, Text(caption))


def caption(aggregator: Aggregator, shown: int, elapsed_s: float | None, sort: str) -> str:
    """What the table stands for, in one line under it."""
    over = f" over {elapsed_s:.3g} s" if elapsed_s else ""
    top = f", top {shown} shown" if shown < aggregator.groups else ""
    return (f"{aggregator.records} records{over} in {aggregator.groups} groups{top}; "
            f"by {','.join(aggregator.by)}, sorted by {sort}")


def document(aggregator: Aggregator, rows: Sequence[Row], elapsed_s: float | None, sort: str,
             source: str, lost: int | None) -> dict[str, Any]:  # fmt: skip
    """The ``stat --json`` object (README)."""
    return {
        "type": "stat",
        "source": source,
        "by": list(aggregator.by),
        "sort": sort,
        "elapsed_s": elapsed_s,
        "records": aggregator.records,
        "groups": aggregator.groups,
        "lost_events": lost,
        "rows": [row.to_json(aggregator.by) for row in rows],
    }

"""The ``libtrace stat`` subcommand: records grouped by operation, live or from a capture.

Live, it traces this host as ``libtrace trace --records`` does (the same
options; see :mod:`libtrace.trace_session`) and, on a terminal, redraws the
table on stderr every ``--interval`` seconds; when the trace ends (Ctrl-C,
SIGTERM, ``--duration``) the final table, or with ``--json`` one JSON
document, goes to stdout.  ``--from FILE`` reads a pcap or pcapng capture
instead (``libtrace pcap``'s records) and prints the same.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ExitCode, print_error
from ..filters import add_filter_options, at_least, record_filter_of
from ..parsers import PARSERS
from ..trace_session import add_tracer_options, given_tracer_options, positive_float
from .aggregate import SORTS, Aggregator
from .keys import DEFAULT_BY, DIMENSIONS, LIVE_ONLY, parse_by
from .view import caption, document, table

if TYPE_CHECKING:
    from rich.console import Console

    from ..flows import FlowRecord


def _by(text: str) -> tuple[str, ...]:
    try:
        return parse_by(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_stat_command(subparsers: Any) -> None:
    """Add ``stat`` to the ``libtrace`` subcommands (``handler`` set to :func:`run`)."""
    stat = subparsers.add_parser(
        "stat",
        help="count, rate, errors and latency percentiles of records, per operation",
        description="Group L7 records by protocol and operation (HTTP method and path "
        "template, Redis command, SQL statement shape, Kafka API and topic, MQTT packet and "
        "topic, DNS question, Dubbo service and method) and show each group's count, rate, "
        "errors, latency p50/p90/p99/max and bytes: live (needs root, as trace does), "
        "redrawn on a terminal, or from a capture with --from.",
    )
    stat.add_argument("--from", dest="source", metavar="FILE",
                      help="read a pcap or pcapng capture instead of tracing this host")
    stat.add_argument("--by", type=_by, default=DEFAULT_BY, metavar="DIMS",
                      help="group by these, comma-separated, of " + ", ".join(DIMENSIONS)
                      + f" (default {','.join(DEFAULT_BY)}; process: live only)")  # fmt: skip
    stat.add_argument("--sort", choices=list(SORTS), default="count",
                      help="order rows by this column, largest first (default count)")
    stat.add_argument("--top", type=at_least(1, int, "rows"), metavar="N",
                      help="show the first N rows only")
    stat.add_argument("--protocol", action="append", choices=sorted(PARSERS), default=[],
                      metavar="P", help="only records of this protocol (repeatable; "
                      + ", ".join(sorted(PARSERS)) + ")")  # fmt: skip
    add_filter_options(stat)
    stat.add_argument("--json", action="store_true",
                      help="at the end, one JSON document (schema in the README) for the table")
    stat.add_argument("--interval", type=positive_float, default=1.0, metavar="SECONDS",
                      help="live on a terminal: redraw the table this often (default 1)")
    add_tracer_options(stat)
    stat.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Aggregate the records of a live trace or of ``args.source``; print the rows."""
    if args.source is not None:
        live_only = [f"--by {name}" for name in args.by if name in LIVE_ONLY]
        flags = live_only + given_tracer_options(args)
        if flags:
            raise ConfigError(f"{', '.join(flags)}: only for a live trace, not with --from")
    aggregator = Aggregator(by=args.by)
    if args.source is not None:
        return _offline(args, aggregator)
    return _live(args, aggregator)


def _wanted(args: argparse.Namespace, records: Iterable[FlowRecord]) -> Iterator[FlowRecord]:
    keep = record_filter_of(args)
    protocols = frozenset(args.protocol)
    for record in records:
        if (not protocols or record.protocol in protocols) and keep(record):
            yield record


def _offline(args: argparse.Namespace, aggregator: Aggregator) -> int:
    from ..pcap import PcapError, analyze

    try:
        for record in _wanted(args, analyze(args.source)):
            aggregator.add(record)
    except PcapError as exc:
        print_error(exc)
        return ExitCode.USAGE
    _print(args, aggregator, aggregator.span_s, source=args.source, lost=None)
    return ExitCode.OK


def _live(args: argparse.Namespace, aggregator: Aggregator) -> int:
    from rich.console import Console

    from ..records import RecordPipeline, trace_records
    from ..trace_session import live_trace

    console = Console(stderr=True)
    # Containers are no dimension: no pipeline lookups for them.
    pipeline = RecordPipeline(protocols=args.protocol or None)
    lock = threading.Lock()  # the aggregator, between this loop and the view's redraws
    with live_trace(args, console) as (tracer, batches):
        start = time.monotonic()

        def elapsed() -> float:
            return time.monotonic() - start

        events = (event for batch in batches for event in batch)
        records = _wanted(args, trace_records(tracer, pipeline=pipeline, events=events))
        view = _redrawn(args, aggregator, console, lock, elapsed) if console.is_terminal \
            else nullcontext()  # fmt: skip
        with view:
            for record in records:
                with lock:
                    aggregator.add(record)
        took = elapsed()
    stats = tracer.stats()
    _print(args, aggregator, took, source="live", lost=stats.lost)
    console.print(f"{pipeline.stats.records} records, {stats.events} events, {stats.lost} lost, "
                  f"{stats.bytes} bytes", highlight=False)  # fmt: skip
    return ExitCode.OK


@contextmanager
def _redrawn(args: argparse.Namespace, aggregator: Aggregator, console: Console,
             lock: threading.Lock, elapsed: Any) -> Iterator[None]:  # fmt: skip
    """The table on the terminal, redrawn every ``--interval`` by rich's thread, gone
    at the end (the final table follows on stdout)."""
    from rich.live import Live

    def render() -> Any:
        took = elapsed()
        with lock:
            rows = aggregator.rows(took, args.sort, args.top)
            line = caption(aggregator, len(rows), took, args.sort)
        return table(rows, aggregator.by, line)

    with Live(get_renderable=render, console=console, refresh_per_second=1 / args.interval,
              transient=True, vertical_overflow="crop"):  # fmt: skip
        yield


def _print(args: argparse.Namespace, aggregator: Aggregator, elapsed_s: float | None,
           source: str, lost: int | None) -> None:  # fmt: skip
    rows = aggregator.rows(elapsed_s, args.sort, args.top)
    if args.json:
        doc = document(aggregator, rows, elapsed_s, args.sort, source, lost)
        sys.stdout.write(json.dumps(doc) + "\n")
        sys.stdout.flush()
        return
    from rich.console import Console

    # Piped, a wide console: rows are not wrapped at 80 columns.
    out = Console(width=None if sys.stdout.isatty() else 1000, highlight=False)
    out.print(table(rows, aggregator.by, caption(aggregator, len(rows), elapsed_s, args.sort)))

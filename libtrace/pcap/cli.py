"""The ``libtrace pcap FILE`` subcommand: records of a capture, as JSON lines or a table."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from typing import Any

from ..errors import ExitCode, print_error
from ..filters import add_filter_options, filter_flags, record_filter_of
from ..output import RECORD_HEADER, add_record_options, record_row, redaction_of
from ..parsers import SPECS


def add_pcap_command(subparsers: Any) -> None:
    """Add ``pcap`` to the ``libtrace`` subcommands (``handler`` set to :func:`run`)."""
    pcap = subparsers.add_parser(
        "pcap",
        help="parse application protocols in a pcap or pcapng file",
        description="Reassemble TCP, recognise "
        + ", ".join(spec.title for spec in SPECS.values())
        + ", and print one record per request/response exchange.",
    )
    pcap.add_argument("file", metavar="FILE", help="a pcap or pcapng capture")
    pcap.add_argument("--json", action="store_true", help="one JSON object per line")
    pcap.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                      help="a request unanswered this long before the capture ends is a "
                      "timeout (default 5)")
    add_record_options(pcap)
    add_filter_options(pcap)
    pcap.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the records of ``args.file``; 2 with one error line if it cannot be read."""
    from ._errors import PcapError
    from ._session import PcapAnalyzer, analyze

    analyzer = PcapAnalyzer(timeout_ns=int(args.timeout * 1e9), redaction=redaction_of(args))
    try:
        records = analyze(args.file, analyzer=analyzer)
        first = next(records, None)  # opens the file: a bad one fails before the header
        if not args.json:
            print(RECORD_HEADER)
        wanted, shown = record_filter_of(args), 0
        for record in filter(wanted, itertools.chain([first] if first else [], records)):
            data = record.to_json(headers=args.headers)
            print(json.dumps(data, separators=(",", ":")) if args.json else record_row(data))
            shown += 1
    except PcapError as exc:
        sys.stdout.flush()
        print_error(exc)
        return ExitCode.USAGE
    # After the records, never silent: on stdout under the table, on stderr
    # under JSON lines (whose stdout holds records only).
    sys.stdout.flush()
    filtered = f"; {shown} shown (--slow, --min-size)" if filter_flags(args) else ""
    print(f"summary: {analyzer.summary.text()}{filtered}",
          file=sys.stderr if args.json else sys.stdout)  # fmt: skip
    return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    """Run ``pcap`` alone (``python -m libtrace.pcap``), for use before the CLI wires it."""
    parser = argparse.ArgumentParser(prog="libtrace")
    add_pcap_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    handler: Any = args.handler
    return int(handler(args))

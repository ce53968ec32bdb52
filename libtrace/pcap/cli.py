"""The ``libtrace pcap FILE`` subcommand: records of a capture, as JSON lines or a table."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from typing import Any

EXIT_OK, EXIT_USAGE = 0, 2


def add_pcap_command(subparsers: Any) -> None:
    """Add ``pcap`` to the ``libtrace`` subcommands (``handler`` set to :func:`run`)."""
    pcap = subparsers.add_parser(
        "pcap",
        help="parse application protocols in a pcap or pcapng file",
        description="Reassemble TCP, recognise HTTP/1, HTTP/2, Redis, DNS, MySQL, Kafka, "
        "MQTT and Dubbo, and print one record per request/response exchange.",
    )
    pcap.add_argument("file", metavar="FILE", help="a pcap or pcapng capture")
    pcap.add_argument("--json", action="store_true", help="one JSON object per line")
    pcap.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                      help="a request unanswered this long before the capture ends is a "
                      "timeout (default 5)")
    pcap.set_defaults(handler=run)


def _summary(message: dict[str, Any] | None, keys: tuple[str, ...]) -> str:
    if not message:
        return "-"
    return " ".join(str(message[k]) for k in keys if message.get(k) not in (None, "", []))


_REQUEST_KEYS = ("method", "command", "path", "name", "qtype", "args", "stream_id")
_RESPONSE_KEYS = ("status", "rcode", "type", "error", "grpc_status")


def _row(record: dict[str, Any]) -> str:
    latency = record["latency_ns"]
    latency_text = f"{latency / 1e6:.3f}ms" if latency is not None else "-"
    return (f"{record['ts_ns'] / 1e9:.6f}  {record['protocol']:<6} "
            f"{record['client']:>21} -> {record['server']:<21} {record['status']:<12} "
            f"{latency_text:>10}  {_summary(record['request'], _REQUEST_KEYS)}"
            f"  => {_summary(record['response'], _RESPONSE_KEYS)}")


def run(args: argparse.Namespace) -> int:
    """Print the records of ``args.file``; 2 with one error line if it cannot be read."""
    from ._errors import PcapError
    from ._session import PcapAnalyzer, analyze

    analyzer = PcapAnalyzer(timeout_ns=int(args.timeout * 1e9))
    try:
        records = analyze(args.file, analyzer=analyzer)
        first = next(records, None)  # opens the file: a bad one fails before the header
        if not args.json:
            print(f"{'time':<17}  {'proto':<6} {'client':>21}    {'server':<21} "
                  f"{'status':<12} {'latency':>10}  request => response")
        for record in itertools.chain([first] if first else [], records):
            print(json.dumps(record, separators=(",", ":")) if args.json else _row(record))
    except PcapError as exc:
        sys.stdout.flush()
        print(f"libtrace: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # After the records, never silent: on stdout under the table, on stderr
    # under JSON lines (whose stdout holds records only).
    sys.stdout.flush()
    print(f"summary: {analyzer.summary.text()}", file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run ``pcap`` alone (``python -m libtrace.pcap``), for use before the CLI wires it."""
    parser = argparse.ArgumentParser(prog="libtrace")
    add_pcap_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    handler: Any = args.handler
    return int(handler(args))

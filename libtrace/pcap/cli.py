"""The ``libtrace pcap FILE`` subcommand: records of a capture, as JSON lines or a table."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from typing import Any

from ..errors import ExitCode, print_error
from ..parsers import SPECS, clip


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
    pcap.set_defaults(handler=run)


#: How a bare number reads in a row.
LABELS = {"api_version": "v{}", "error_code": "error {}", "qos": "qos {}",
          "return_code": "rc {}", "statement_id": "stmt {}", "affected_rows": "affected {}",
          "rows": "{} rows", "grpc_status": "grpc {}", "reset_code": "reset {}"}  # fmt: skip
#: The most characters one value takes in a row.
MAX_VALUE_CHARS = 60


def _text(key: str, value: Any) -> str:
    if isinstance(value, list):
        text = ", ".join(_text(key, item) for item in value) if value and isinstance(
            value[0], dict) else " ".join(str(item) for item in value)  # fmt: skip
    elif isinstance(value, dict):  # a DNS answer
        text = " ".join(str(value[k]) for k in ("type", "data") if k in value)
    else:
        text = LABELS.get(key, "{}").format(value)
    return clip(text, MAX_VALUE_CHARS)


def _summary(message: dict[str, Any] | None, keys: tuple[str, ...]) -> str:
    if not message:
        return "-"
    parts = []
    for choice in keys:
        key = next((k for k in choice.split("|") if message.get(k) not in (None, "", [])), None)
        if key is not None:
            parts.append(_text(key, message[key]))
    return " ".join(parts)


def summarize(record: dict[str, Any]) -> tuple[str, str]:
    """A record's request and response as a row shows them (also ``libtrace check``'s table)."""
    spec = SPECS.get(record["protocol"])
    request_keys = spec.request_summary if spec is not None else ()
    response_keys = spec.response_summary if spec is not None else ()
    request = _summary(record["request"], request_keys)
    response = record["response"]
    if record["request"] is None and response and response.get("kind") == "greeting":
        request = "handshake"  # the server speaks first: no request is missing
    return request, _summary(response, response_keys)


def _row(record: dict[str, Any]) -> str:
    latency = record["latency_ns"]
    latency_text = f"{latency / 1e6:.3f}ms" if latency is not None else "-"
    request, response = summarize(record)
    return (f"{record['ts_ns'] / 1e9:.6f}  {record['protocol']:<6} "
            f"{record['client']:>21} -> {record['server']:<21} {record['status']:<12} "
            f"{latency_text:>10}  {request}  => {response}")


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
        print_error(exc)
        return ExitCode.USAGE
    # After the records, never silent: on stdout under the table, on stderr
    # under JSON lines (whose stdout holds records only).
    sys.stdout.flush()
    print(f"summary: {analyzer.summary.text()}", file=sys.stderr if args.json else sys.stdout)
    return ExitCode.OK


def main(argv: list[str] | None = None) -> int:
    """Run ``pcap`` alone (``python -m libtrace.pcap``), for use before the CLI wires it."""
    parser = argparse.ArgumentParser(prog="libtrace")
    add_pcap_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    handler: Any = args.handler
    return int(handler(args))

"""The ``libtrace check SCENARIO`` subcommand.

Exit codes: 0 when every scenario's traced records equal the wire's, nothing
was lost and containers were attributed right; 1 when they differ (or the
tracer could not attach: the CLI's environment code); 2 for bad input or a
scenario that could not run (its server, image, Docker daemon, traffic or
tcpdump failed), with one line saying why — nothing is left running.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ExitCode, print_error

if TYPE_CHECKING:
    from rich.console import Console

    from ._result import CheckResult

ALL = "all"


def add_check_command(subparsers: Any) -> None:
    """Add ``check`` to the ``libtrace`` subcommands (``handler`` set to :func:`run`)."""
    from ..services import SERVICES  # the scenarios are the services

    check = subparsers.add_parser(
        "check",
        help="trace a real server and its clients while tcpdump captures them; compare records",
        description="Run one scenario (a real server and deterministic client traffic), "
        "capture it with the tracer and with tcpdump at once, parse both into records and "
        "compare them on their protocol fields. Exit 0 when they agree and nothing was lost, "
        "1 when they differ, 2 when the scenario cannot run. Needs root.",
    )
    check.add_argument(
        "scenario", choices=[*SERVICES, ALL], metavar="SCENARIO",
        help=f"one of {', '.join(SERVICES)}, or {ALL}",
    )  # fmt: skip
    check.add_argument(
        "--backend", choices=("process", "docker"), default="process",
        help="run the server as a process (default) or a Docker container",
    )  # fmt: skip
    check.add_argument(
        "--report", type=Path, metavar="DIR",
        help="write DIR/check-SCENARIO-BACKEND.json (and keep the .pcap), both mode 0600",
    )  # fmt: skip
    check.add_argument("--json", action="store_true", help="print the comparison as JSON")
    check.add_argument("--host", help="server address (default: loopback)")
    check.add_argument("--port", type=int, help="server port (default: a free one)")
    check.add_argument(
        "--write-expected",
        action="store_true",
        help="write the wire's records to fixtures/check/<scenario>.expected.jsonl",
    )
    check.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the scenario(s); see the module docstring for the exit codes."""
    from rich.console import Console

    from ..services import SERVICES, ServiceError
    from ._errors import CheckError
    from ._table import render

    scenarios = list(SERVICES) if args.scenario == ALL else [args.scenario]
    if len(scenarios) > 1 and (args.host or args.port):
        print_error("--host and --port need a single scenario")
        return ExitCode.USAGE
    console, err = Console(), Console(stderr=True)
    results: list[CheckResult] = []
    for scenario in scenarios:
        try:
            results.append(_one(scenario, args, err))
        except (ServiceError, CheckError) as exc:
            sys.stdout.flush()
            print_error(exc)
            return ExitCode.USAGE
        if not args.json:
            render(results[-1], console)
    if args.json:
        payload = [r.to_json() for r in results]
        print(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2))
    return ExitCode.OK if all(r.ok for r in results) else ExitCode.FAILED


def _one(scenario: str, args: argparse.Namespace, err: Console) -> CheckResult:
    from ..output import write_private
    from ._expected import expected_path, write_expected
    from ._run import run_check

    stem = f"check-{scenario}-{args.backend}"
    if args.report is not None:
        args.report.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="libtrace-check-") as tmp:
        # --write-expected needs the capture: tshark must agree with the wire's records
        keep = args.report / f"{stem}.pcap" if args.report is not None else None
        if keep is None and args.write_expected:
            keep = Path(tmp) / f"{stem}.pcap"
        with err.status(f"{scenario}: starting") as status:
            result = run_check(
                scenario, args.backend, host=args.host, port=args.port, keep_pcap=keep,
                progress=lambda step: status.update(f"{scenario}: {step}"),
            )  # fmt: skip
        if args.write_expected and keep is not None:
            _oracle_agrees(keep)
    if args.report is not None:
        report = args.report / f"{stem}.json"
        write_private(report, json.dumps(result.to_json(), indent=2) + "\n")  # holds records
        err.print(f"{scenario}: report {report}", highlight=False)
    if args.write_expected:
        path = write_expected(expected_path(scenario), result.wire_expected)
        err.print(f"{scenario}: wrote {sum(result.wire_expected.values())} expected records "
                  f"to {path}", highlight=False)  # fmt: skip
    return result


def _oracle_agrees(pcap: Path) -> None:
    """Expected files are written only when tshark reads the wire as libtrace does.

    Raises:
        CheckError: it does not, or tshark is missing.
    """
    from ..pcap.oracle import OracleDisagrees, OracleUnavailable, verified_records
    from ._errors import CheckError

    try:
        verified_records(str(pcap))
    except (OracleDisagrees, OracleUnavailable) as exc:
        raise CheckError(f"not writing expected records: {exc}") from exc


__all__ = ["add_check_command", "run"]

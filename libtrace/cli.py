"""The ``libtrace`` command.

Library code raises :class:`~libtrace.errors.LibtraceError`; this module is
the one place that turns those into a one-line message (``libtrace: error:
...``) and an :class:`~libtrace.errors.ExitCode`: ``USAGE`` (2) for bad input
(arguments, files), ``FAILED`` (1) for an environment that cannot trace
(privileges, kernel), ``INTERRUPTED`` (130) for Ctrl-C before anything started.
The subcommands return the same codes for their own answers.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import textwrap
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TextIO

from . import __version__
from .errors import ConfigError, ExitCode, LibtraceError, error_line
from .trace_session import compat_list  # noqa: F401  (benchmarks import it from here)

if TYPE_CHECKING:
    from .records import LiveRecord
    from .tracer.events import SocketEvent

#: The subcommands in ``libtrace --help`` order: name -> (module, the function
#: that adds it to the subparsers, its one-line summary; "" is this module).
#: Only the command being run has its module imported and its parser built
#: (:func:`build_parser`), so that ``libtrace --help`` and ``libtrace pcap``
#: import neither the tracer nor the matrix.  The summaries repeat the
#: ``help=`` of each ``add_*`` function; a test checks that they agree.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "trace": ("", "add_trace_command", "trace socket traffic on this host"),
    "pcap": (
        "libtrace.pcap.cli",
        "add_pcap_command",
        "parse application protocols in a pcap or pcapng file",
    ),
    "stat": (
        "libtrace.stat.cli",
        "add_stat_command",
        "count, rate, errors and latency percentiles of records, per operation",
    ),
    "check": (
        "libtrace.check.cli",
        "add_check_command",
        "trace a real server and its clients while tcpdump captures them; compare records",
    ),
    "vm": ("libtrace.vm.cli", "add_vm_command", "boot a kernel under QEMU and run a command in it"),
    "kernels": (
        "libtrace.vm.cli",
        "add_kernels_command",
        "list the kernels the catalog knows and which are cached",
    ),
    "matrix": (
        "libtrace.matrix.cli",
        "add_matrix_commands",
        "boot kernels, run the kernel-level tests, report kernel x capability",
    ),
    "compat": (
        "libtrace.matrix.compat",
        "add_compat_command",
        "predict, per kernel, which BPF object loads and why (no boot)",
    ),
    "go-inspect": (
        "libtrace.tracer.golang.cli",
        "add_go_inspect_command",
        "show what Go TLS tracing needs to know about a Go binary",
    ),
}


def build_parser(only: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The ``libtrace`` parser, every subcommand built in full, or only those in ``only``.

    The others then have their name and summary alone: enough for ``libtrace
    --help`` and for argparse's errors, without importing their modules.
    """
    parser = argparse.ArgumentParser(
        prog="libtrace", description="Trace application protocols with eBPF."
    )
    parser.add_argument("--version", action="version", version=f"libtrace {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, adder, summary) in COMMANDS.items():
        if only is None or name in only:
            _adder(module, adder)(commands)
            _add_epilog(commands.choices[name], name)
        else:
            commands.add_parser(name, help=summary)
    return parser


#: ``--help`` examples of each command (the exit codes follow them).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "trace": ("libtrace trace --port 6379 --records          # Redis records, a table",
              "libtrace trace --pid 1234 --json --no-payload  # events without their bytes",
              "libtrace trace --records --json --headers --duration 30 > records.jsonl",
              "libtrace trace --port 443 --write tls.pcapng > /dev/null  # for Wireshark"),
    "pcap": ("libtrace pcap capture.pcapng                   # a table and a summary line",
             "libtrace pcap --json --headers capture.pcap    # one record per line"),
    "stat": ("libtrace stat --port 6379 --duration 10         # Redis commands, live",
             "libtrace stat --from capture.pcapng --sort p99 --top 10",
             "libtrace stat --by server,key --slow 100 --json > slow.json"),
    "check": ("libtrace check redis                           # one scenario, local server",
              "libtrace check all --backend docker --report results/check"),
    "vm": ("libtrace vm run --kernel 6.1 -- uname -r",),
    "kernels": ("libtrace kernels --json", "libtrace kernels build --source 5.10"),
    "matrix": ("libtrace matrix                                 # the default kernels",
               "libtrace matrix --kernels 5.10,6.1 --report results/matrix --jobs 2",
               "libtrace matrix report results/matrix --compare old/matrix.json  # what changed"),
    "compat": ("libtrace compat --kernel 5.4 --kernel 4.19",),
    "go-inspect": ("libtrace go-inspect /usr/bin/some-go-server --json",),
}  # fmt: skip


def _add_epilog(command: argparse.ArgumentParser, name: str) -> None:
    codes = "\n".join(textwrap.fill(code.meaning, 79, initial_indent=f"  {int(code):>3}  ",
                                     subsequent_indent=" " * 7) for code in ExitCode)  # fmt: skip
    examples = "\n".join(f"  {line}" for line in EXAMPLES.get(name, ()))
    command.epilog = f"examples:\n{examples}\n\nexit codes:\n{codes}"
    command.formatter_class = argparse.RawDescriptionHelpFormatter


def _adder(module: str, function: str) -> Callable[[Any], None]:
    where = importlib.import_module(module) if module else sys.modules[__name__]
    adder: Callable[[Any], None] = getattr(where, function)
    return adder


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand in ``argv``: its first word that is not an option (the
    top-level options take no values)."""
    return next((word for word in argv if not word.startswith("-")), None)


def add_trace_command(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``trace`` to the ``libtrace`` subcommands (``handler`` set to its runner)."""
    # Its choices come from the parsers, which the handler imports anyway.
    from .filters import add_filter_options
    from .output import add_record_options
    from .parsers import PARSERS
    from .trace_session import add_tracer_options

    trace = commands.add_parser(
        "trace",
        help="trace socket traffic on this host",
        description="Print every chunk of data that processes send or receive on inet "
        "sockets. Needs root (or CAP_BPF and CAP_PERFMON).",
    )
    trace.add_argument("--json", action="store_true", help="one JSON object per line")
    add_tracer_options(trace)
    trace.add_argument(
        "--records",
        action="store_true",
        help="print L7 request/response records (as libtrace pcap does, plus pid, comm, "
        "side, tls and container) instead of raw events",
    )
    trace.add_argument(
        "--protocol",
        action="append",
        choices=sorted(PARSERS),
        default=[],
        metavar="P",
        help="with --records: only records of this protocol (repeatable; "
        + ", ".join(sorted(PARSERS))
        + ")",
    )
    trace.add_argument(
        "--no-payload",
        action="store_true",
        help="with --json, raw events without their bytes (data_b64): headers, sizes and "
        "offsets only (raw events carry whatever the process sent, secrets included)",
    )
    add_record_options(trace)
    add_filter_options(trace)
    trace.add_argument(
        "--write",
        metavar="FILE",
        help="also write the traced bytes to FILE as a pcapng for Wireshark/tshark: "
        "synthetic TCP/UDP packets, each commented with pid, comm, fd and syscall; "
        "holes (lost events, --payload-cap) are missing segments (mode 0600)",
    )
    trace.set_defaults(handler=_trace)


def _json_line(event: SocketEvent, no_payload: bool) -> str:
    data = event.to_json()
    if no_payload:
        data.pop("data_b64", None)
    return json.dumps(data, separators=(",", ":")) + "\n"


#: The event table's header: the columns of :func:`_event_row`.
EVENT_HEADER = (f"{'time':<15} {'pid':>7} {'comm':<15} {'fd':>4} {'call':<8} {'l4':<3} "
                "local → remote  bytes  data  (→ sent, ← received, ⇄ connection)")  # fmt: skip


def _event_row(event: SocketEvent, clock_offset_ns: int) -> str:
    """An event as one table line (plain text: rich's per-line rendering cost
    more than the rest of the tracer's work per event); its time is the wall
    clock of ``ts_ns`` + ``clock_offset_ns``."""
    from .output import wall_clock

    when = f"{wall_clock(event.ts_ns + clock_offset_ns):<15}"
    local = f"{event.laddr}:{event.lport}"
    remote = f"{event.raddr}:{event.rport}"
    if event.type.name != "DATA":
        return (f"{when} {event.pid:>7} {event.comm:<15} {event.fd:>4} "
                f"{event.type.name.lower():<8} {event.l4:<3} {local} ⇄ {remote}")  # fmt: skip
    arrow = "→" if event.direction.name == "EGRESS" else "←"
    preview = event.data[:48].decode("ascii", "replace")
    preview = "".join(ch if ch.isprintable() else "." for ch in preview)
    return (f"{when} {event.pid:>7} {event.comm:<15} {event.fd:>4} {event.syscall.name.lower():<8}"
            f" {event.l4:<3} {local} {arrow} {remote} {event.size:>6}B  {preview}")  # fmt: skip


def _print_records(records: Iterator[LiveRecord], table: bool, out: TextIO, headers: bool) -> None:
    """One JSON object per line, or a table row per record (pcap's, plus who traced it)."""
    from .output import RECORD_HEADER, monotonic_to_epoch_ns, record_row

    clock_offset = monotonic_to_epoch_ns()  # events are timed by CLOCK_MONOTONIC
    if table:
        out.write(f"{'pid':>7} {'comm':<15} {'side':<6} {RECORD_HEADER}\n")
    for record in records:
        if not table:
            out.write(json.dumps(record.to_json(headers=headers), separators=(",", ":")) + "\n")
        else:
            side = record.side + ("+tls" if record.tls else "")
            container = record.container
            where = f"  [{container.name or container.id[:12]}]" if container else ""
            row = record_row(record.to_json(), clock_offset)
            out.write(f"{record.pid:>7} {record.comm:<15} {side:<6} {row}{where}\n")
        out.flush()


def _trace(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .filters import filter_flags, record_filter_of
    from .output import monotonic_to_epoch_ns, redaction_of
    from .pcap.writer import PcapngWriter
    from .records import ContainerResolver, RecordPipeline, trace_records
    from .trace_session import live_trace, refuse_unless

    records_only = [flag for flag, given in (
        ("--protocol", args.protocol), ("--headers", args.headers),
        ("--no-redact", args.no_redact), ("--redact-header", args.redact_header),
        ("--redact-sql-literals", args.redact_sql_literals)) if given]  # fmt: skip
    refuse_unless(args.records, records_only + filter_flags(args), "with --records")
    refuse_unless(args.json, ["--no-payload"] if args.no_payload else [],
                  "with --json (the table shows no payload)")
    console = Console(stderr=True)
    # Records and the pcapng's comments name containers.
    containers = ContainerResolver() if args.records or args.write else None
    pipeline = None
    if args.records:
        pipeline = RecordPipeline(protocols=args.protocol or None,
                                  containers=containers, redaction=redaction_of(args))
    # Opened before the tracer starts: a path that cannot be written fails at once.
    writer = PcapngWriter.open(args.write, containers=containers) if args.write else None
    out = sys.stdout
    # The writer is closed last (whole blocks; Ctrl-C leaves a valid file).
    with writer or nullcontext(), live_trace(args, console) as (tracer, batches):
        # Plain lines: one per event or record, also when piped (rich would wrap
        # them at 80 columns there, and render each at a cost above the tracer's).
        table = not args.json
        if writer is not None:
            batches = writer.passing(batches)
        if pipeline is not None:
            events = (event for batch in batches for event in batch)
            records = trace_records(tracer, pipeline=pipeline, events=events)
            wanted = record_filter_of(args)
            _print_records(filter(wanted, records), table, out, args.headers)
        else:
            clock_offset = monotonic_to_epoch_ns()  # events are timed by CLOCK_MONOTONIC
            if table:
                out.write(EVENT_HEADER + "\n")
            for batch in batches:
                if table:
                    out.writelines(_event_row(event, clock_offset) + "\n" for event in batch)
                else:
                    out.writelines(_json_line(event, args.no_payload) for event in batch)
                out.flush()  # once a batch: a reader sees each as it comes
    stats = tracer.stats()
    summary: dict[str, object] = {
        "type": "stats",
        "events": stats.events,
        "lost": stats.lost,
        "bytes": stats.bytes,
        "kernel_events": stats.kernel_events,
        "process_events": stats.process_events,
        "dropped": stats.dropped,
        "decode_errors": stats.decode_errors,
        "missed": stats.missed,
        "inflight_full": stats.inflight_full,
        "conns_full": stats.conns_full,
        "go_inflight_full": stats.go_inflight_full,
    }
    if pipeline is not None:
        summary["records"] = pipeline.stats.records
        summary["redactions"] = pipeline.stats.redactions
    if writer is not None:
        summary["written"] = asdict(writer.stats)
    if args.json:
        out.write(json.dumps(summary) + "\n")
        out.flush()
    else:
        records_text = f"{pipeline.stats.records} records, " if pipeline is not None else ""
        written = f", {writer.stats.packets} packets written" if writer is not None else ""
        console.print(
            f"{records_text}{stats.events} events, {stats.lost} lost, {stats.bytes} bytes"
            + written
            + (f", {stats.missed} program runs skipped by the kernel" if stats.missed else ""),
            highlight=False,
        )
    return ExitCode.OK



#: OSErrors that say a path given is unusable (exit 2); other OSErrors exit 1.
_PATH_ERRORS = (FileExistsError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
                PermissionError)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_of(argv)
    parser = build_parser(only=[command] if command else [])
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="libtrace: %(message)s"
    )
    if not verbose:
        # libbpf's own account of a failure repeats ours in its words.
        logging.getLogger("libtrace.libbpf").setLevel(logging.CRITICAL)
        # Which Go programs the TLS uprobes attach to and leave is news, not detail.
        logging.getLogger("libtrace.tracer.golang.attach").setLevel(logging.INFO)
    # Not a LibtraceError: setup.py loads the build module alone, without the package.
    from .bpf.build import BuildError

    try:
        return int(args.handler(args))
    except ConfigError as exc:
        parser.exit(ExitCode.USAGE, error_line(exc) + "\n")
    except LibtraceError as exc:
        parser.exit(ExitCode.FAILED, error_line(exc) + "\n")
    except BuildError as exc:
        # clang's own output follows on the next lines of the message: the first
        # line says what failed; -v shows the rest.
        first, _, rest = str(exc).partition("\n")
        if rest.strip():
            logging.getLogger(__name__).info("%s", rest.strip())
        parser.exit(ExitCode.FAILED, error_line(f"cannot build the BPF objects: {first}") + "\n")
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return ExitCode.OK
    except OSError as exc:
        # A path the user gave that cannot be used (a file where a directory goes,
        # no permission, a missing parent): bad input, said in one line.
        where = f": {exc.filename}" if exc.filename else ""
        code = ExitCode.USAGE if isinstance(exc, _PATH_ERRORS) else ExitCode.FAILED
        parser.exit(code, error_line(f"{exc.strerror or exc}{where}") + "\n")


if __name__ == "__main__":
    sys.exit(main())

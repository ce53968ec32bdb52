"""The ``libtrace`` command.

Library code raises :class:`~libtrace.errors.LibtraceError`; this module is
the one place that turns those into a one-line message and an exit code:
2 for bad input (arguments, files), 1 for an environment that cannot trace
(privileges, kernel), 130 for Ctrl-C before anything started.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from rich.console import Console

from . import __version__
from .errors import ConfigError, LibtraceError
from .matrix.cli import add_matrix_commands
from .matrix.compat import add_compat_command
from .pcap.cli import add_pcap_command
from .tracer.events import SocketEvent
from .tracer.golang.cli import add_go_inspect_command
from .tracer.probe import COMPAT_SWITCHES
from .tracer.tracer import DEFAULT_PAYLOAD_CAP, Tracer, TracerConfig
from .vm.cli import add_vm_commands

EXIT_OK, EXIT_ENVIRONMENT, EXIT_USAGE = 0, 1, 2


def compat_list(text: str) -> frozenset[str]:
    """argparse type of ``--force-compat perfbuf,probe-read,no-btf`` (benchmarks use it too)."""
    names = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = names - set(COMPAT_SWITCHES)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown switch {', '.join(sorted(unknown))} "
            f"(choose from {', '.join(COMPAT_SWITCHES)})"
        )
    return names


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="libtrace", description="Trace application protocols with eBPF."
    )
    parser.add_argument("--version", action="version", version=f"libtrace {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    trace = commands.add_parser(
        "trace",
        help="trace socket traffic on this host",
        description="Print every chunk of data that processes send or receive on inet "
        "sockets. Needs root (or CAP_BPF and CAP_PERFMON).",
    )
    trace.add_argument("--json", action="store_true", help="one JSON object per line")
    trace.add_argument(
        "--pid",
        type=int,
        action="append",
        default=[],
        metavar="PID",
        help="trace only this process (repeatable)",
    )
    trace.add_argument(
        "--port",
        type=int,
        action="append",
        default=[],
        metavar="PORT",
        help="trace only sockets with this local or remote port (repeatable)",
    )
    trace.add_argument(
        "--duration",
        type=_positive_float,
        metavar="SECONDS",
        help="stop after this many seconds (default: until Ctrl-C or SIGTERM)",
    )
    trace.add_argument(
        "--payload-cap",
        type=int,
        default=DEFAULT_PAYLOAD_CAP,
        metavar="BYTES",
        help=f"bytes copied per chunk (default {DEFAULT_PAYLOAD_CAP}, max 16384)",
    )
    trace.add_argument(
        "--buffer-size",
        type=int,
        metavar="BYTES",
        help="kernel event buffer size, a power of two (default 8 MiB)",
    )
    trace.add_argument(
        "--force-compat",
        type=compat_list,
        default=frozenset(),
        metavar="LIST",
        help="force old-kernel paths: comma-separated of " + ", ".join(COMPAT_SWITCHES),
    )
    trace.add_argument("--btf", metavar="FILE", help="external BTF for kernels without BTF")
    trace.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="explain the variant chosen and log libbpf's messages",
    )
    trace.set_defaults(handler=_trace)
    add_pcap_command(commands)
    add_vm_commands(commands)
    add_matrix_commands(commands)
    add_compat_command(commands)
    add_go_inspect_command(commands)
    return parser


def _print_table_row(console: Console, event: SocketEvent) -> None:
    arrow = {"egress": "→", "ingress": "←"}[event.direction.name.lower()]
    local = f"{event.laddr}:{event.lport}"
    remote = f"{event.raddr}:{event.rport}"
    if event.type.name != "DATA":
        console.print(
            f"{event.pid:>7} {event.comm:<15} {event.fd:>4} {event.type.name.lower():<8}"
            f" {event.l4:<3} {local} ⇄ {remote}",
            highlight=False,
            markup=False,
        )
        return
    preview = event.data[:48].decode("ascii", "replace")
    preview = "".join(ch if ch.isprintable() else "." for ch in preview)
    console.print(
        f"{event.pid:>7} {event.comm:<15} {event.fd:>4} {event.syscall.name.lower():<8}"
        f" {event.l4:<3} {local} {arrow} {remote} {event.size:>6}B  {preview}",
        highlight=False,
        markup=False,
    )


def _trace(args: argparse.Namespace) -> int:
    options: dict[str, object] = {
        "pids": tuple(args.pid),
        "ports": tuple(args.port),
        "payload_cap": args.payload_cap,
        "force_compat": args.force_compat,
        "btf_file": args.btf,
    }
    if args.buffer_size is not None:
        options["buffer_bytes"] = args.buffer_size
    config = TracerConfig(**options)  # type: ignore[arg-type]
    tracer = Tracer(config)
    console = Console(stderr=True)

    def on_signal(_signo: int, _frame: FrameType | None) -> None:
        tracer.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    out = sys.stdout
    with tracer:
        # One line on stderr once the programs are attached: scripts wait for it.
        variant = tracer.variant.name if tracer.variant else "?"
        console.print(f"libtrace: tracing ({variant}); Ctrl-C to stop", highlight=False)
        if args.verbose:
            console.print("libtrace: " + "; ".join(tracer.reasons), highlight=False)
        table = Console() if not args.json else None
        for event in tracer.events(args.duration):
            if table is None:
                out.write(json.dumps(event.to_json(), separators=(",", ":")) + "\n")
                out.flush()
            else:
                _print_table_row(table, event)
    stats = tracer.stats()
    if args.json:
        out.write(
            json.dumps(
                {
                    "type": "stats",
                    "events": stats.events,
                    "lost": stats.lost,
                    "bytes": stats.bytes,
                    "kernel_events": stats.kernel_events,
                }
            )
            + "\n"
        )
        out.flush()
    else:
        console.print(
            f"{stats.events} events, {stats.lost} lost, {stats.bytes} bytes", highlight=False
        )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="libtrace: %(message)s"
    )
    if not verbose:
        # libbpf's own account of a failure repeats ours in its words.
        logging.getLogger("libtrace.libbpf").setLevel(logging.CRITICAL)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        parser.exit(EXIT_USAGE, f"libtrace: error: {exc}\n")
    except LibtraceError as exc:
        parser.exit(EXIT_ENVIRONMENT, f"libtrace: error: {exc}\n")
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

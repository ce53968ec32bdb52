"""A live trace as the commands run it: its options, its start, its batches, its end.

``libtrace trace`` and ``libtrace stat`` both trace this host: the same
options (``--pid``, ``--port``, ``--duration``, the buffer and Go TLS
switches), the same line on stderr once the programs are attached (scripts
and tests wait for it), the same loss warnings while it runs, and the same
stop on Ctrl-C or SIGTERM.  Nothing heavy is imported when this module
loads: ``libtrace --help`` reads the CLI without the tracer.
"""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from .tracer.events import SocketEvent
    from .tracer.tracer import Tracer, TracerConfig


def compat_list(text: str) -> frozenset[str]:
    """argparse type of ``--force-compat perfbuf,probe-read,no-btf`` (benchmarks use it too)."""
    from .tracer.probe import COMPAT_SWITCHES

    names = frozenset(part.strip() for part in text.split(",") if part.strip())
    unknown = names - set(COMPAT_SWITCHES)
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown switch {', '.join(sorted(unknown))} "
            f"(choose from {', '.join(COMPAT_SWITCHES)})"
        )
    return names


def positive_float(text: str) -> float:
    """argparse type of a number of seconds (or milliseconds) that must be above 0."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def add_tracer_options(parser: argparse.ArgumentParser) -> None:
    """The options of a command that traces this host (``trace``, ``stat``)."""
    # Their defaults come from the tracer, which the handler imports anyway.
    from .tracer.events import DEFAULT_PAYLOAD_CAP
    from .tracer.probe import COMPAT_SWITCHES
    from .tracer.tracer import DEFAULT_GO_ATTACH_DELAY

    parser.add_argument("--pid", type=int, action="append", default=[], metavar="PID",
                        help="trace only this process (repeatable)")  # fmt: skip
    parser.add_argument("--port", type=int, action="append", default=[], metavar="PORT",
                        help="trace only sockets with this local or remote port (repeatable)")
    parser.add_argument("--duration", type=positive_float, metavar="SECONDS",
                        help="stop after this many seconds (default: until Ctrl-C or SIGTERM)")
    parser.add_argument(
        "--payload-cap", type=int, default=DEFAULT_PAYLOAD_CAP, metavar="BYTES",
        help=f"bytes copied per chunk (default {DEFAULT_PAYLOAD_CAP}, max 65536; "
        "65024 on kernels without the BPF ring buffer)",
    )  # fmt: skip
    parser.add_argument("--buffer-size", type=int, metavar="BYTES",
                        help="kernel event buffer size, a power of two (default 8 MiB)")
    parser.add_argument(
        "--force-compat", type=compat_list, default=frozenset(), metavar="LIST",
        help="force old-kernel paths: comma-separated of " + ", ".join(COMPAT_SWITCHES),
    )  # fmt: skip
    parser.add_argument("--btf", metavar="FILE", help="external BTF for kernels without BTF")
    parser.add_argument(
        "--go-tls", action=argparse.BooleanOptionalAction, default=True,
        help="trace Go programs' TLS plaintext with uprobes on crypto/tls (default on)",
    )  # fmt: skip
    parser.add_argument(
        "--go-attach-delay", type=float, default=DEFAULT_GO_ATTACH_DELAY, metavar="SECONDS",
        help="attach to a newly started Go program after it ran this long "
        f"(default {DEFAULT_GO_ATTACH_DELAY:g})",
    )  # fmt: skip
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="explain the variant chosen and log libbpf's messages")


def given_tracer_options(args: argparse.Namespace) -> list[str]:
    """The options of :func:`add_tracer_options` that ``args`` holds a value other than
    the default of (``-v`` aside: it explains, and changes nothing)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_tracer_options(parser)
    return [action.option_strings[-1] for action in parser._actions
            if action.dest != "verbose"
            and getattr(args, action.dest) != action.default]  # fmt: skip


def tracer_config_of(args: argparse.Namespace) -> TracerConfig:
    """The tracer configuration :func:`add_tracer_options`' options ask for."""
    from .tracer.tracer import TracerConfig

    options: dict[str, object] = {
        "pids": tuple(args.pid),
        "ports": tuple(args.port),
        "payload_cap": args.payload_cap,
        "force_compat": args.force_compat,
        "btf_file": args.btf,
        "go_tls": args.go_tls,
        "go_attach_delay": args.go_attach_delay,
    }
    if args.buffer_size is not None:
        options["buffer_bytes"] = args.buffer_size
    return TracerConfig(**options)  # type: ignore[arg-type]


def _loss_warning(console: Console, config: TracerConfig) -> Callable[[int, int], None]:
    """What the trace says when the buffer lost events, with what would help."""

    def say(new: int, total: int) -> None:
        console.print(
            f"libtrace: warning: {new} events lost ({total} in all): the kernel buffer filled "
            f"faster than it was read; a larger --buffer-size (now {config.buffer_bytes}), a "
            f"smaller --payload-cap (now {config.payload_cap}) or --pid/--port filters help",
            highlight=False, markup=False, soft_wrap=True,
        )  # fmt: skip

    return say


@contextmanager
def live_trace(
    args: argparse.Namespace, console: Console
) -> Iterator[tuple[Tracer, Iterator[list[SocketEvent]]]]:
    """Start the tracer ``args`` configure; give it and its batches of events.

    Ctrl-C and SIGTERM stop it (the batches then end with what the buffer
    still held), as ``--duration`` does.  Once the programs are attached, one
    line on stderr says so (``libtrace: tracing (VARIANT); Ctrl-C to stop``);
    losses are said while they happen.
    """
    from .tracer.losses import LossWatch
    from .tracer.tracer import Tracer

    config = tracer_config_of(args)
    tracer = Tracer(config)

    def on_signal(_signo: int, _frame: FrameType | None) -> None:
        tracer.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with tracer:
        variant = tracer.variant.name if tracer.variant else "?"
        console.print(
            f"libtrace: tracing ({variant}); Ctrl-C to stop", highlight=False, soft_wrap=True
        )
        if args.verbose:
            console.print("libtrace: " + "; ".join(tracer.reasons), highlight=False)
        if tracer.go_tls is not None:
            console.print(
                f"libtrace: Go TLS: attached to {len(tracer.go_tls.attached)} running Go "
                f"program(s); programs started from now on after {config.go_attach_delay:g} s "
                "(--go-attach-delay)", highlight=False, soft_wrap=True)  # fmt: skip
        watch = LossWatch(tracer, _loss_warning(console, config))
        yield tracer, watch.watch_batches(tracer.batches(args.duration))


def refuse_unless(condition: bool, flags: list[str], needs: str) -> None:
    """A :class:`ConfigError` naming ``flags`` (given) unless ``condition``: ``--x acts only
    with NEEDS``."""
    if flags and not condition:
        verb = "acts" if len(flags) == 1 else "act"
        raise ConfigError(f"{', '.join(flags)} {verb} only {needs}")

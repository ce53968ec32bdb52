"""Record the golden pcaps in ``fixtures/<protocol>/`` from real servers on loopback.

``python -m libtrace.services.record [PROTOCOL ...] [--out fixtures]`` starts each
server of :mod:`libtrace.services` with the process backend on its default
loopback address (nginx, nghttpd, redis-server, dnsmasq, mariadbd, mosquitto,
the tansu Kafka broker, and a FAKE Dubbo server: no Dubbo server is
packaged), captures with ``tcpdump -i lo``, runs the service's deterministic
traffic script (curl, nghttp, h2load, redis-cli, dig, getent, PyMySQL,
mysql-connector-python, paho-mqtt, kafka-python, raw sockets), and writes
``<name>.pcap`` (``<name>-variants.pcap`` for a service's variants traffic; the
scenarios of :mod:`libtrace.pcap.derive` make their captures from those real ones,
and those of :mod:`libtrace.pcap.synth` from a protocol's specification, each with a
named generator) and, beside it, ``<name>.expected.jsonl``: the records
``libtrace pcap --json`` prints for it (review them when they change).  It
refuses to write them when tshark, the independent oracle
(:mod:`libtrace.pcap.oracle`), disagrees with any record: the expected
files are then never just the parser's own say.  Needs root for tcpdump,
tshark, and the Debian packages named in each scenario.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..errors import ExitCode, print_error
from ..output import write_private
from ..pcap.derive import DERIVED
from ..pcap.oracle import OracleDisagrees, OracleUnavailable, verified_records
from ..pcap.synth import GENERATED
from . import SERVICES, ServiceError, start, tcpdump

#: Loopback ports the scenarios use: each service's default.
PORTS = {name: service.port for name, service in SERVICES.items()}
#: Seconds to wait for a server or tcpdump to get ready.
READY_TIMEOUT = 10.0


# _wait_port and _process predate libtrace.services and are kept for the live-records tests
# that import them; new code starts servers with libtrace.services.start().
def _wait_port(port: int, udp: bool = False) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if udp:
            time.sleep(0.5)
            return
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


@contextlib.contextmanager
def _process(argv: list[str], **kwargs: object) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _capture(path: Path, port: int) -> Iterator[None]:
    """The fixture's capture of ``port``: live before the traffic, complete after
    it (tcpdump's marker proves both), the marker flow left out of the file."""
    with tempfile.TemporaryDirectory() as tmp, tcpdump.capture(
        path, f"port {port}", keep_markers=False, log=Path(tmp) / "tcpdump.log"
    ) as wire:
        yield
        wire.mark()


def _scenario(service: str, pcap_name: str, variants: bool = False) -> Callable[[Path, Path], None]:
    """A recorder: start ``service``, capture its port, drive its traffic script
    (or, with ``variants``, its script of real-world protocol variants)."""
    script = SERVICES[service].variants if variants else SERVICES[service].traffic
    assert script is not None

    def record(tmp: Path, out: Path) -> None:
        with start(service) as running, _capture(out / pcap_name, running.port):
            script(running)

    record.__doc__ = script.__doc__
    return record


#: Each service's fixture: (scenario, pcap name, programs its traffic needs: a
#: packaged server and its clients; tansu and the FAKE Dubbo server run from files).
_FIXTURES = tuple(
    (name, service.fixture,
     (service.program, *service.clients) if service.package is not None else ())
    for name, service in SERVICES.items()
    if service.fixture is not None
)  # fmt: skip

#: Scenario name -> (recorder, programs it needs, the fixtures directory it writes to):
#: each service's traffic, and ``<service>-variants`` where the service has variants.
SCENARIOS: dict[str, tuple[Callable[[Path, Path], None], tuple[str, ...], str]] = {
    name: (_scenario(name, pcap_name), programs, SERVICES[name].protocol)
    for name, pcap_name, programs in _FIXTURES
}
SCENARIOS.update({
    f"{name}-variants": (
        _scenario(name, pcap_name.replace(".pcap", "-variants.pcap"), variants=True),
        programs, SERVICES[name].protocol,
    )
    for name, pcap_name, programs in _FIXTURES
    if SERVICES[name].variants is not None
})  # fmt: skip


#: The gRPC fixture's loopback port (grpcio serves it for the recording only).
GRPC_PORT = 18444


def _record_grpc(tmp: Path, out: Path) -> None:
    """gRPC over cleartext HTTP/2 from grpcio, server and client (no gRPC server is
    packaged for Debian): a unary OK, a unary NOT_FOUND, a server stream."""
    from ._grpc import grpc_traffic

    with _capture(out / "grpc.pcap", GRPC_PORT):
        grpc_traffic("127.0.0.1", GRPC_PORT)


SCENARIOS["grpc"] = (_record_grpc, (), "http2")


def _derived(name: str) -> Callable[[Path, Path], None]:
    """A recorder that derives ``name`` from a real fixture already in the directory."""
    _, source, generator = DERIVED[name]

    def record(tmp: Path, out: Path) -> None:
        if not (out / source).exists():
            raise ServiceError(f"{out / source} is missing: record it first")
        generator(out / source, out / name)

    record.__doc__ = generator.__doc__
    return record


def _generated(name: str) -> Callable[[Path, Path], None]:
    """A recorder that writes ``name`` from a protocol's specification."""
    _, generator = GENERATED[name]

    def record(tmp: Path, out: Path) -> None:
        generator(out / name)

    record.__doc__ = generator.__doc__
    return record


# Generated captures first: derived ones may start from them.
SCENARIOS.update({
    name.split(".")[0]: (_generated(name), (), directory)
    for name, (directory, _) in GENERATED.items()
})  # fmt: skip
SCENARIOS.update({
    name.split(".")[0]: (_derived(name), (), directory)
    for name, (directory, _, _) in DERIVED.items()
})  # fmt: skip


def write_expected(pcap: Path) -> Path:
    """Write ``<name>.expected.jsonl`` beside ``pcap`` from ``libtrace pcap --json``,
    once tshark agrees with every record (Dubbo 2, which it cannot dissect, aside).

    Raises:
        OracleDisagrees: tshark reads the capture otherwise; nothing is written.
        OracleUnavailable: tshark is missing.
    """
    records = verified_records(str(pcap))
    if not records:  # the oracle would have had nothing to disagree with
        raise OracleDisagrees(f"{pcap}: libtrace finds no records in it")
    target = pcap.with_suffix(".expected.jsonl")
    write_private(target, "".join(json.dumps(r, separators=(",", ":"), sort_keys=True) + "\n"
                                  for r in records))  # fmt: skip
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m libtrace.services.record",
        description=__doc__.split("\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "protocols",
        nargs="*",
        choices=[*SCENARIOS, []],
        metavar="SCENARIO",
        help=f"which to record (default all: {', '.join(SCENARIOS)})",
    )
    parser.add_argument("--out", default="fixtures", help="the fixtures directory")
    parser.add_argument(
        "--expected-only",
        action="store_true",
        help="only regenerate the expected records of existing pcaps",
    )
    args = parser.parse_args(argv)
    for name in args.protocols or list(SCENARIOS):
        recorder, programs, directory = SCENARIOS[name]
        out = Path(args.out) / directory
        out.mkdir(parents=True, exist_ok=True)
        if not args.expected_only:
            missing = [p for p in ("tcpdump", *programs) if shutil.which(p) is None]
            if missing:
                print(f"{name}: skipped, missing {' '.join(missing)}", file=sys.stderr)
                continue
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    recorder(Path(tmp), out)
                except ServiceError as exc:
                    print_error(f"{name}: {exc}")
                    return ExitCode.FAILED
        for pcap in sorted([*out.glob("*.pcap"), *out.glob("*.pcapng")]):
            try:
                print(f"{name}: {pcap} -> {write_expected(pcap)}")
            except (OracleDisagrees, OracleUnavailable) as exc:
                print_error(exc)
                return ExitCode.FAILED
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())

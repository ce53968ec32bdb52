"""One differential check: a service traced and captured at once, the two record sets compared.

Theory of operation, in the order things happen:

1. the service starts (its readiness probes end before anything captures);
2. the tracer attaches (port filter: the service's port and a marker port;
   Go TLS off, no scenario needs it) and tcpdump starts on ``lo``; a marker
   datagram proves each of them live (:mod:`._capture`, :mod:`._tracer_marker`);
3. the traffic script runs in a child process while this one drains the
   tracer into a :class:`~libtrace.records.RecordPipeline` with a
   :class:`~libtrace.records.ContainerResolver` (:mod:`._traffic`);
4. a second marker proves every packet written; the tracer is drained until
   quiet and the pipeline flushed; tcpdump, the tracer and the service stop;
   if tcpdump says the kernel dropped packets (a busy or emulated machine),
   the wire cannot judge the trace and the scenario runs again (at most
   :data:`WIRE_ATTEMPTS` times, then no verdict); likewise when the kernel
   skipped tracer programs (``missed``: a preempted program on a kernel with
   faultable syscall tracepoints blocks the others on its CPU), since the
   trace then lacks bytes without a gap to show for it: after the last
   attempt the verdict stands and says why it differs;
5. the pcap is parsed by ``libtrace pcap``'s analyzer; both sides keep only
   the records of the service's endpoint (a port filter on 53 also admits
   this host's other DNS); each traced side is compared to the wire
   (:mod:`._compare`), the server side to the expected file (:mod:`._expected`).

Every exit path leaves nothing behind: each resource is a ``with``.
"""

from __future__ import annotations

import random
import socket
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..pcap import analyze
from ..records import ContainerResolver, FlowRecord, LiveRecord, RecordPipeline, endpoint_text
from ..services import GLIBC_DNS_PORT, SERVICES, Backend, Service, start
from ..tracer.events import MAX_PAYLOAD
from ..tracer.tracer import Tracer, TracerConfig
from ._capture import capture
from ._compare import SIDES, compare_sides
from ._errors import CheckError
from ._expected import FIXTURES_DIR, compare_expected, expected_path, expected_view
from ._result import CheckResult
from ._tracer_marker import MarkedPipeline, tracer_marker
from ._traffic import drain, run_traced, traffic_argv

#: The largest payload cap: every scenario's messages fit, so nothing is cut.
PAYLOAD_CAP = MAX_PAYLOAD
#: Runs of a scenario whose wire capture dropped packets, before giving up.
WIRE_ATTEMPTS = 3
#: Ring buffer: a whole scenario's events fit even if the drain falls behind.
BUFFER_BYTES = 64 << 20

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


def free_endpoint(service: Service) -> tuple[str, int]:
    """Where a check runs ``service``: a port nothing uses, away from other sessions' defaults.

    DNS keeps port 53 (glibc's resolver knows no other) on a random loopback address.
    """
    if service.port == GLIBC_DNS_PORT:
        return f"127.0.{random.randrange(54, 250)}.{random.randrange(2, 250)}", GLIBC_DNS_PORT
    with socket.socket() as sock:
        sock.bind((service.host, 0))
        return service.host, int(sock.getsockname()[1])


def service_of(scenario: str) -> Service:
    """The scenario's service.

    Raises:
        ConfigError: no such scenario.
    """
    try:
        return SERVICES[scenario]
    except KeyError:
        raise ConfigError(
            f"unknown scenario {scenario!r}: choose from {', '.join(SERVICES)}"
        ) from None


def of_endpoint(records: Iterable[FlowRecord], server: str) -> list[Mapping[str, Any]]:
    """The JSON form, which the check compares, of the records of ``server``'s connections."""
    return [r.to_json() for r in records if r.server == server]


def distinct_containers(records: list[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Per side, the distinct ``container`` values its records carry (sorted, null first)."""
    out: dict[str, list[Any]] = {}
    for side in {*SIDES, *(str(r.get("side")) for r in records)}:
        values = {repr(r.get("container")): r.get("container") for r in records
                  if r.get("side") == side}  # fmt: skip
        out[side] = [values[k] for k in sorted(values, key=lambda k: (k != "None", k))]
    return out


def run_check(
    scenario: str,
    backend: str | Backend = "process",
    *,
    host: str | None = None,
    port: int | None = None,
    keep_pcap: Path | None = None,
    expected_dir: Path = FIXTURES_DIR,
    progress: Progress = _quiet,
) -> CheckResult:
    """Run one scenario with the tracer and tcpdump at once and compare their records.

    Args:
        scenario: a service name (``redis``, ``mysql``, …).
        backend: ``"process"``, ``"docker"``, or a backend object.
        host, port: where the server listens (default: :func:`free_endpoint`).
        keep_pcap: keep the capture at this path (default: deleted).
        expected_dir: where ``<scenario>.expected.jsonl`` is looked for.
        progress: told each step as it begins.

    Raises:
        ConfigError: unknown scenario.
        ServiceError: the server, its image, the Docker daemon or the traffic failed;
            tcpdump is missing or did not capture (``CaptureError``).
        CheckError: tcpdump dropped packets on every attempt, or the tracer
            delivered no marker.
        BpfError: the tracer could not attach.
    """
    service = service_of(scenario)
    default_host, default_port = free_endpoint(service)
    host, port = host or default_host, port or default_port
    server = endpoint_text((host, port))
    begun = time.monotonic()
    for attempt in range(1, WIRE_ATTEMPTS + 1):
        with (
            tempfile.TemporaryDirectory(prefix="libtrace-check-") as tmp,
            tracer_marker() as marker,
        ):
            config = TracerConfig(ports=(port, marker.port), payload_cap=PAYLOAD_CAP,
                                  buffer_bytes=BUFFER_BYTES, go_tls=False)  # fmt: skip
            pcap = keep_pcap or Path(tmp) / f"{scenario}.pcap"
            kind = backend if isinstance(backend, str) else backend.name
            progress(f"starting {scenario} ({kind})")
            with start(service, backend, host=host, port=port) as running:
                progress("attaching the tracer and starting tcpdump")
                with Tracer(config) as tracer, capture(pcap, host, port) as wire:
                    pipeline = RecordPipeline(containers=ContainerResolver())
                    marked = MarkedPipeline(pipeline, marker.port)
                    records: list[LiveRecord] = []
                    marker.prove_live(tracer, marked, records)
                    progress(f"running {scenario} traffic")
                    argv = traffic_argv(running)
                    records += run_traced(tracer, marked, argv, f"{scenario} traffic")
                    progress("draining the tracer")
                    wire.mark()
                    drain(tracer, marked, records)
                    records += pipeline.flush()
                    stats = tracer.stats()
                container = running.container
            dropped = wire.dropped()
            if dropped:
                # The wire is the oracle: a capture with holes cannot judge the trace.
                why = f"tcpdump dropped {dropped} packets (attempt {attempt} of {WIRE_ATTEMPTS})"
                if attempt == WIRE_ATTEMPTS:
                    raise CheckError(f"{why}: the wire capture is incomplete, no verdict")
                progress(f"{why}; running the scenario again")
                continue
            if stats.missed and attempt < WIRE_ATTEMPTS:
                # The trace may lack bytes without a gap; the last attempt's verdict stands.
                progress(f"the kernel skipped {stats.missed} tracer program runs (attempt "
                         f"{attempt} of {WIRE_ATTEMPTS}); running the scenario again")
                continue
            progress("parsing the capture")
            wire_records = of_endpoint(analyze(str(pcap)), server)
            break
    traced = of_endpoint(records, server)
    servers = [r for r in traced if r.get("side") == "server"]
    path = expected_path(scenario, expected_dir)
    return CheckResult(
        scenario=scenario,
        backend=running.backend,
        server=server,
        sides=compare_sides(traced, wire_records),
        pcap_records=len(wire_records),
        traced_records={s: sum(r.get("side") == s for r in traced) for s in SIDES},
        lost=stats.lost,
        missed=stats.missed,
        events=stats.events,
        pipeline=asdict(pipeline.stats),
        containers=distinct_containers(traced),
        service_container=(
            {"id": container.id, "name": container.name, "image": container.image}
            if container is not None
            else None
        ),
        expected=compare_expected(servers, server, path),
        wire_expected=expected_view(wire_records, server),
        expected_path=str(path),
        seconds=time.monotonic() - begun,
        pcap=str(keep_pcap) if keep_pcap else None,
    )

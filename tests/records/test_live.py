"""Live records from real servers and clients, checked against a simultaneous tcpdump.

Each differential test runs one scenario of :mod:`libtrace.services.record` (the
real server, tcpdump on loopback, the real clients: the same traffic as the
golden fixtures) in a child process while the tracer runs here, then feeds the
traced events through :class:`RecordPipeline` and parses the pcap with
``libtrace pcap``'s analyzer.  Both ends of every connection are on this
host, so every exchange must come out twice from the trace, once labelled
``client`` and once ``server``, and each side's records must equal the pcap's
on their protocol fields.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from libtrace import Tracer
from libtrace.pcap import analyze
from libtrace.records import ContainerResolver, RecordPipeline
from libtrace.services.record import PORTS, SCENARIOS

from ..tracing import drain
from ._events import records_json
from ._live import during_capture, protocol_view, record_scenario, redis_server, run_clients

pytestmark = [pytest.mark.root, pytest.mark.bpf]

#: The largest payload cap: the scenarios' messages fit, so nothing is cut.
FULL_CAP = 16384


def needs(protocol: str) -> pytest.MarkDecorator:
    programs = ("tcpdump", *SCENARIOS[protocol][1])
    missing = [p for p in programs if shutil.which(p) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {' '.join(missing)}")


def live_and_pcap(
    protocol: str, tmp_path: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    """(live records, pcap records, events lost) of one scenario traced and captured at once."""
    with Tracer(ports=(PORTS[protocol],), payload_cap=FULL_CAP, go_tls=False) as tracer:
        events = record_scenario(tracer, protocol, tmp_path)
        lost = tracer.stats().lost
    pipeline = RecordPipeline(containers=ContainerResolver())
    live = records_json(pipeline, events)
    pcaps = sorted((tmp_path / protocol).glob("*.pcap"))
    assert len(pcaps) == 1, pcaps
    return during_capture(live, pcaps[0]), [r.to_json() for r in analyze(str(pcaps[0]))], lost


@pytest.mark.parametrize(
    "protocol",
    [pytest.param(p, marks=needs(p)) for p in ("http1", "redis", "dns")],
)
def test_live_records_equal_the_pcap_records_from_each_side(protocol: str, tmp_path: Path) -> None:
    live, pcap, lost = live_and_pcap(protocol, tmp_path)

    assert lost == 0
    assert pcap, "the scenario produced traffic"
    assert {r["protocol"] for r in live} == {protocol}
    sides = {side: [r for r in live if r["side"] == side] for side in ("client", "server")}
    assert len(live) == len(sides["client"]) + len(sides["server"])
    for side, records in sides.items():
        assert protocol_view(records) == protocol_view(pcap), f"{side} side differs from pcap"
    # Plain processes on the host: no container.
    assert all(r["container"] is None and r["tls"] is False for r in live)


@needs("redis")
def test_both_ends_label_the_same_exchange_client_and_server(tmp_path: Path) -> None:
    live, _, _ = live_and_pcap("redis", tmp_path)

    by_exchange: dict[tuple[str, str], set[str]] = {}
    for record in live:
        if record["request"] is not None:
            key = (record["client"], repr(record["request"]))
            by_exchange.setdefault(key, set()).add(record["side"])
    assert by_exchange and all(sides == {"client", "server"} for sides in by_exchange.values())
    server_comms = {r["comm"] for r in live if r["side"] == "server"}
    client_comms = {r["comm"] for r in live if r["side"] == "client"}
    assert server_comms == {"redis-server"}
    assert "redis-cli" in client_comms


@pytest.mark.skipif(
    shutil.which("redis-server") is None or shutil.which("redis-cli") is None,
    reason="needs redis-server and redis-cli",
)
def test_payload_cap_below_a_message_gives_gaps_and_desyncs_not_invented_records() -> None:
    port, cap, value = 26381, 64, "v" * 1000
    cli = ["redis-cli", "-p", str(port)]
    with redis_server(port), Tracer(ports=(port,), payload_cap=cap, go_tls=False) as tracer:
        clients = threading.Thread(
            target=run_clients(
                [*cli, "SET", "big", value], [*cli, "GET", "big"], [*cli, "SET", "small", "1"]
            )
        )
        clients.start()
        events = []
        while clients.is_alive():
            events += tracer.poll(50)
        events += drain(tracer)
    pipeline = RecordPipeline()
    records = records_json(pipeline, events)
    stats = pipeline.stats

    assert stats.gaps >= 2 and stats.gap_bytes >= 2 * (len(value) - cap)
    assert stats.desyncs >= 2
    requests = [r["request"] for r in records if r["request"] is not None]
    # The capped SET never parses; the GET does, but its capped answer does not.
    assert not any(q["command"] == "SET" and q["args"][0] == "big" for q in requests)
    assert not any(r["response"] and r["response"]["type"] == "bulk_string" for r in records)
    gets = [r for r in records if r["request"] and r["request"]["command"] == "GET"]
    assert gets and all(r["response"] is None and r["status"] == "unknown" for r in gets)
    # Whole messages on the same connections still parse.
    small = [r for r in records if r["request"] and r["request"]["args"][:1] == ["small"]]
    assert sorted(r["side"] for r in small) == ["client", "server"]
    assert all(r["status"] == "ok" for r in small)

"""A capture that begins mid-connection gives the records of what it holds.

Every TCP conversation of a fixture capture is cut before each of its packets
that carry payload (for these captures, message boundaries: each segment
starts a message), as if the capture (or the tracer) had started there: no
SYN, no handshake, no first messages.  Inference must still name the protocol
and the side, and the records whose request lies after the cut must equal the
full capture's records of those requests (exchanges that span the cut are
left out: their request is gone).

Protocols whose every cut passes are listed in :data:`WHOLE`; the others are
known gaps of issue 13, measured on 2026-12-06: Kafka 42 of 46 cuts (a server's
response at the cut taken for a request, which swaps the sides), MQTT 20 of 44 (an MQTT
5 connection read as 3.1.1 once its CONNECT is gone; tails of only
acknowledgements on a non-standard port stay unrecognised), MySQL 35 of 44
(tails of only pings, OKs and QUIT on a non-standard port; a prepared
statement's execution whose PREPARE was cut off).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from libtrace.pcap._reader import Packet, read_packets
from libtrace.pcap._session import PcapAnalyzer

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
#: Fixtures whose conversations give the same tail records wherever they are cut.
WHOLE = ("dns/dnsmasq.pcap", "dubbo/fake-dubbo.pcap", "http1/nginx.pcap",
         "http2/nghttpd.pcap", "redis/redis.pcap")  # fmt: skip


def _records(packets: list[Packet]) -> list[dict[str, Any]]:
    analyzer = PcapAnalyzer()
    out = [record for packet in packets for record in analyzer.packet(packet)]
    return out + analyzer.finish()


def _flow(packet: Packet) -> tuple[object, ...]:
    return (packet.transport, *sorted(((packet.src, packet.sport), (packet.dst, packet.dport))))


def _requests_after(records: list[dict[str, Any]], ts_ns: int) -> list[str]:
    """The records whose request was sent at or after ``ts_ns``, comparable as text."""
    return sorted(json.dumps(r, sort_keys=True) for r in records
                  if r.get("request") and r["ts_ns"] >= ts_ns)  # fmt: skip


def _cuts(fixture: str) -> list[tuple[str, int]]:
    packets = list(read_packets(str(FIXTURES / fixture)))
    flows: dict[tuple[object, ...], list[int]] = {}
    for index, packet in enumerate(packets):
        if packet.transport == "tcp" and packet.payload:
            flows.setdefault(_flow(packet), []).append(index)
    return [(fixture, index) for indexes in flows.values() for index in indexes[1:]]


@pytest.mark.parametrize(("fixture", "cut"), [c for f in WHOLE for c in _cuts(f)])
def test_the_tail_of_a_conversation_cut_anywhere_gives_the_tail_of_its_records(
    fixture: str, cut: int
) -> None:
    packets = list(read_packets(str(FIXTURES / fixture)))
    flow, ts_ns = _flow(packets[cut]), packets[cut].ts_ns
    tail = [p for index, p in enumerate(packets) if _flow(p) != flow or index >= cut]

    def of_flow(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ends = {f"{host}:{port}" for host, port in flow[1:]}  # type: ignore[misc]
        ends |= {f"[{host}]:{port}" for host, port in flow[1:]}  # type: ignore[misc]
        return [r for r in records if r["client"] in ends and r["server"] in ends]

    expected = _requests_after(of_flow(_records(packets)), ts_ns)
    assert _requests_after(of_flow(_records(tail)), ts_ns) == expected

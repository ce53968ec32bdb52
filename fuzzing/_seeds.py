"""Seeds out of the fixtures: each parser's flows as scripts, the capture files
themselves for the pcap target, and records like the tracer's for the decoder."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path

from . import _script

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _flows(path: Path) -> Iterator[tuple[bool, list[_script.Op]]]:
    """(UDP, the feeds) of each flow of a capture, in the repository's own reading of it."""
    from libtrace.pcap import read_packets
    from libtrace.pcap._reader import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN

    flows: dict[tuple[object, ...], tuple[tuple[str, int], list[_script.Op]]] = {}
    for packet in read_packets(str(path)):
        src, dst = (packet.src, packet.sport), (packet.dst, packet.dport)
        key = (packet.transport, *sorted((src, dst)))
        if key not in flows:  # the client: the SYN's sender, else who spoke first
            opener = dst if packet.flags & TCP_SYN and packet.flags & TCP_ACK else src
            flows[key] = (opener, [])
        client, ops = flows[key]
        direction = "request" if src == client else "response"
        if packet.payload:
            ops.append(_script.Op(direction, _script.DATA, packet.payload))
        if packet.flags & (TCP_FIN | TCP_RST):
            ops.append(_script.Op(direction, _script.EOF))
    for flow, (_, ops) in flows.items():
        if any(op.kind == _script.DATA for op in ops):
            yield flow[0] == "udp", ops


def parser_seeds(protocol: str, max_len: int, window: int = 3) -> list[bytes]:
    """The flows of ``fixtures/PROTOCOL/`` as scripts of ``window`` feeds each
    (every run of that many consecutive feeds, cut to ``max_len``): short
    inputs of a few messages keep the executions fast, and the fuzzer joins
    and cuts them as it likes."""
    seeds = set()
    for path in sorted((FIXTURES / protocol).glob("*.pcap*")):
        flags = _script.MID_STREAM if "midstream" in path.name else 0
        for udp, ops in _flows(path):
            run_flags = flags | (_script.UDP if udp else 0)
            for start in range(max(1, len(ops) - window + 1)):
                seeds.add(_script.encode(run_flags, ops[start:start + window])[:max_len])
    return sorted(seeds)


def pcap_seeds(max_len: int) -> list[bytes]:
    """Every fixture capture, cut to ``max_len`` bytes (a cut capture is a seed too)."""
    return [path.read_bytes()[:max_len] for path in sorted(FIXTURES.glob("*/*.pcap*"))]


def decoder_seeds() -> list[bytes]:
    """Records of each event type, family and transport, with and without payload."""
    from libtrace.tracer.events import EventFlag, EventType, RawEvent, Syscall

    seeds = []
    for etype in EventType:
        for family, l4 in ((socket.AF_INET, socket.IPPROTO_TCP),
                           (socket.AF_INET6, socket.IPPROTO_UDP)):
            payload = b"GET / HTTP/1.1\r\n\r\n" if etype is EventType.DATA else b""
            raw = RawEvent(ts_ns=1, pid=42, tid=43, fd=5, size=len(payload) + 7,
                           captured=len(payload), flags=int(EventFlag.TLS), type=int(etype),
                           family=family, l4=l4, lport=8080, rport=40000,
                           syscall=int(Syscall.WRITE))  # fmt: skip
            record = bytearray(bytes(raw))
            for name, value in (("comm", b"curl"), ("laddr", bytes(range(16))),
                                ("raddr", b"\x7f\0\0\x01")):
                at = getattr(RawEvent, name).offset
                record[at:at + len(value)] = value
            seeds.append(bytes(record) + payload + b"\0" * 8)  # perf samples carry padding
    return seeds


def write(directory: Path, seeds: list[bytes]) -> int:
    """Write the seeds as files named by their digest; returns how many."""
    directory.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    return len({hashlib.sha1(seed).digest() for seed in seeds})

"""From packets to records: flows, client/server sides, inference, parsers, pairing.

Theory of operation: packets are grouped into flows by their address pair.
A TCP flow reassembles each direction (:mod:`._tcp`); until its protocol is
known, in-order chunks are kept (at most :data:`MAX_UNDECIDED_BYTES` per
direction) and each new chunk is offered to inference.  The client is the
sender of a SYN without ACK; failing that, inference says which side sent
a request; failing that, the lower port is the server.  Once decided, the
kept chunks are replayed into the protocol's parser (``mid_stream`` when no
SYN was seen), and from then on chunks, gaps and ends of stream go straight
to it; its events go through a :class:`~libtrace.parsers.Pairer`.  Flows
whose protocol stays unknown, or has no parser yet, produce nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..parsers import PARSERS, Direction, Inference, Pairer, StreamParser, Transport, infer
from ..parsers.pairing import DEFAULT_TIMEOUT_NS
from ._reader import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Packet, read_packets
from ._tcp import Chunk, TcpStream

#: Bytes kept per direction while the protocol is undecided; past this the flow is unknown.
MAX_UNDECIDED_BYTES = 64 * 1024
#: Chunks per direction offered to inference before the flow is declared unknown.
MAX_INFERENCE_CHUNKS = 32
#: Flows tracked at once; beyond, the oldest is finished early.
MAX_FLOWS = 65536

Endpoint = tuple[str, int]


def endpoint_text(ep: Endpoint) -> str:
    host, port = ep
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(slots=True)
class _Flow:
    transport: str
    a: Endpoint
    b: Endpoint
    client: Endpoint | None = None
    syn_seen: bool = False
    protocol: str | None = None
    given_up: bool = False
    parser: StreamParser | None = None
    pairer: Pairer | None = None
    streams: dict[Endpoint, TcpStream] = field(default_factory=dict)
    kept: dict[Endpoint, list[Chunk]] = field(default_factory=dict)
    eof_sent: set[Endpoint] = field(default_factory=set)
    tries: int = 0

    @property
    def server(self) -> Endpoint:
        return self.b if self.client == self.a else self.a

    def direction(self, sender: Endpoint) -> Direction:
        return Direction.REQUEST if sender == self.client else Direction.RESPONSE


class PcapAnalyzer:
    """Turn packets into JSON-ready records (the ``libtrace pcap`` contract)."""

    def __init__(self, *, timeout_ns: int = DEFAULT_TIMEOUT_NS) -> None:
        self.timeout_ns = timeout_ns
        self._flows: dict[tuple[str, Endpoint, Endpoint], _Flow] = {}
        self.last_ts = 0

    def packet(self, pkt: Packet) -> list[dict[str, Any]]:
        """Take one packet; return the records it completes."""
        self.last_ts = max(self.last_ts, pkt.ts_ns)
        src, dst = (pkt.src, pkt.sport), (pkt.dst, pkt.dport)
        key = (pkt.transport, *sorted((src, dst)))
        flow = self._flows.get(key)  # type: ignore[arg-type]
        out: list[dict[str, Any]] = []
        if flow is None:
            if len(self._flows) >= MAX_FLOWS:
                oldest = next(iter(self._flows))
                out += self._finish(self._flows.pop(oldest))
            flow = self._flows[key] = _Flow(pkt.transport, src, dst)  # type: ignore[index]
        if flow.given_up:
            return out
        if pkt.transport == "udp":
            return out + self._datagram(flow, src, pkt)
        stream = flow.streams.setdefault(src, TcpStream())
        if pkt.flags & TCP_SYN:
            stream.syn(pkt.seq)
            if not pkt.flags & TCP_ACK and flow.client is None:
                flow.client, flow.syn_seen = src, True
            return out
        fin = bool(pkt.flags & (TCP_FIN | TCP_RST))
        if not pkt.payload and not fin:
            return out
        chunks = stream.segment(pkt.seq, pkt.payload, pkt.ts_ns, fin=fin)
        if pkt.flags & TCP_RST:
            chunks += stream.flush()
        out += self._chunks(flow, src, chunks, stream.eof)
        return out

    def finish(self) -> list[dict[str, Any]]:
        """The capture ended: flush every flow."""
        out: list[dict[str, Any]] = []
        for flow in self._flows.values():
            out += self._finish(flow)
        self._flows.clear()
        return out

    # -- internals ---------------------------------------------------------------------
    def _finish(self, flow: _Flow) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for sender, stream in flow.streams.items():
            out += self._chunks(flow, sender, stream.flush(), True)
        if flow.parser is None and not flow.given_up and flow.transport == "tcp":
            out += self._decide(flow, force=True)
        if flow.pairer is not None:
            out += self._emit(flow, flow.pairer.flush(self.last_ts))
        return out

    def _datagram(self, flow: _Flow, src: Endpoint, pkt: Packet) -> list[dict[str, Any]]:
        if not pkt.payload:
            return []
        if flow.parser is None:
            verdict = infer(pkt.payload, transport="udp", ports=(pkt.sport, pkt.dport))
            if not self._start(flow, verdict, src, transport="udp"):
                flow.tries += 1
                flow.given_up = flow.tries >= MAX_INFERENCE_CHUNKS
                return []
        assert flow.parser is not None
        flow.parser.feed(flow.direction(src), pkt.payload, pkt.ts_ns)
        return self._drain(flow)

    def _chunks(self, flow: _Flow, sender: Endpoint, chunks: list[Chunk],
                eof: bool) -> list[dict[str, Any]]:
        if flow.given_up:
            return []
        if flow.parser is None:
            kept = flow.kept.setdefault(sender, [])
            kept.extend(chunks)
            if eof:
                kept.append(Chunk(self.last_ts))  # an empty chunk marks the end
            return self._decide(flow, new=(sender, chunks))
        out = []
        direction = flow.direction(sender)
        for chunk in chunks:
            if chunk.gap:
                flow.parser.feed_gap(direction, chunk.gap, chunk.ts_ns)
            else:
                flow.parser.feed(direction, chunk.data, chunk.ts_ns)
            out += self._drain(flow)
        if eof and sender not in flow.eof_sent:
            flow.eof_sent.add(sender)
            flow.parser.feed(direction, b"", self.last_ts)
            out += self._drain(flow)
        return out

    def _decide(self, flow: _Flow, new: tuple[Endpoint, list[Chunk]] | None = None,
                force: bool = False) -> list[dict[str, Any]]:
        ports = (flow.a[1], flow.b[1])
        candidates: list[tuple[Inference, Endpoint]] = []
        senders = [new] if new else [(s, c) for s, c in flow.kept.items()]
        for sender, chunks in senders:
            for chunk in chunks:
                if chunk.data:
                    flow.tries += 1
                    candidates.append((infer(chunk.data, ports=ports), sender))
        candidates = [c for c in candidates if c[0].protocol is not None]
        if candidates:
            verdict, sender = max(candidates, key=lambda c: c[0].confidence)
            if self._start(flow, verdict, sender, transport="tcp"):
                out: list[dict[str, Any]] = []
                for kept_sender, chunks in list(flow.kept.items()):
                    eof = bool(chunks) and not chunks[-1].data and not chunks[-1].gap
                    out += self._chunks(flow, kept_sender, [c for c in chunks if c.data or c.gap],
                                        eof)
                flow.kept.clear()
                return out
        kept_bytes = max((sum(len(c.data) for c in v) for v in flow.kept.values()), default=0)
        if force or flow.tries >= MAX_INFERENCE_CHUNKS or kept_bytes > MAX_UNDECIDED_BYTES:
            flow.given_up = True
            flow.kept.clear()
        return []

    def _start(self, flow: _Flow, verdict: Inference, sender: Endpoint,
               transport: Transport) -> bool:
        parser_class = PARSERS.get(verdict.protocol or "")
        if parser_class is None or transport not in parser_class.transports:
            if verdict.protocol is not None:
                flow.given_up = True  # recognised, but parsed only by a later version
            return False
        if flow.client is None:
            if verdict.direction is not None:
                flow.client = sender if verdict.direction is Direction.REQUEST else (
                    flow.b if sender == flow.a else flow.a)
            else:
                flow.client = flow.a if flow.a[1] > flow.b[1] else flow.b
        flow.protocol = verdict.protocol
        flow.parser = parser_class(transport=transport,
                                   mid_stream=transport == "tcp" and not flow.syn_seen)
        flow.pairer = Pairer(timeout_ns=self.timeout_ns)
        return True

    def _drain(self, flow: _Flow) -> list[dict[str, Any]]:
        assert flow.parser is not None and flow.pairer is not None
        records = []
        for event in flow.parser.events():
            records += flow.pairer.add(event)
        return self._emit(flow, records)

    def _emit(self, flow: _Flow, records: list[Any]) -> list[dict[str, Any]]:
        client, server = endpoint_text(flow.client or flow.a), endpoint_text(flow.server)
        return [r.to_dict(client, server) for r in records]


def analyze(path: str, *, timeout_ns: int = DEFAULT_TIMEOUT_NS) -> Iterator[dict[str, Any]]:
    """Yield the records of a capture file, as the ``--json`` contract prints them.

    Raises:
        PcapError: the file cannot be read (see :func:`read_packets`).
    """
    analyzer = PcapAnalyzer(timeout_ns=timeout_ns)
    for packet in read_packets(path):
        yield from analyzer.packet(packet)
    yield from analyzer.finish()

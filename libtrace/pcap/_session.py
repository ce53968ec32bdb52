"""From packets to records: flows, TCP reassembly, then one conversation per flow.

Theory of operation: packets are grouped into flows by their address pair.
A TCP flow reassembles each direction (:mod:`._tcp`); the sender of a SYN
without ACK is the client.  The in-order chunks, gaps and ends of stream go
to the flow's :class:`~libtrace.records.Conversation`, which does what the
live pipeline does too: inference, the protocol's parser, pairing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..parsers import Transport
from ..parsers.pairing import DEFAULT_TIMEOUT_NS
from ..records._conversation import Conversation, Endpoint
from ._reader import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Packet, read_packets
from ._tcp import TcpStream

#: Flows tracked at once; beyond, the oldest is finished early.
MAX_FLOWS = 65536


@dataclass(slots=True)
class _Flow:
    conversation: Conversation
    streams: dict[Endpoint, TcpStream] = field(default_factory=dict)


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
            transport: Transport = pkt.transport  # type: ignore[assignment]
            conversation = Conversation(transport, src, dst, timeout_ns=self.timeout_ns)
            flow = self._flows[key] = _Flow(conversation)  # type: ignore[index]
        conv = flow.conversation
        if conv.given_up:
            return out
        if pkt.transport == "udp":
            return out + conv.to_dicts(conv.datagram(src, pkt.payload, pkt.ts_ns))
        stream = flow.streams.setdefault(src, TcpStream())
        if pkt.flags & TCP_SYN:
            stream.syn(pkt.seq)
            if not pkt.flags & TCP_ACK:
                conv.opened_by(src)
            return out
        fin = bool(pkt.flags & (TCP_FIN | TCP_RST))
        if not pkt.payload and not fin:
            return out
        chunks = stream.segment(pkt.seq, pkt.payload, pkt.ts_ns, fin=fin)
        if pkt.flags & TCP_RST:
            chunks += stream.flush()
        return out + conv.to_dicts(conv.chunks(src, chunks, stream.eof, self.last_ts))

    def finish(self) -> list[dict[str, Any]]:
        """The capture ended: flush every flow."""
        out: list[dict[str, Any]] = []
        for flow in self._flows.values():
            out += self._finish(flow)
        self._flows.clear()
        return out

    def _finish(self, flow: _Flow) -> list[dict[str, Any]]:
        conv = flow.conversation
        records = []
        for sender, stream in flow.streams.items():
            records += conv.chunks(sender, stream.flush(), True, self.last_ts)
        records += conv.finish(self.last_ts)
        return conv.to_dicts(records)


def analyze(path: str, *, timeout_ns: int = DEFAULT_TIMEOUT_NS) -> Iterator[dict[str, Any]]:
    """Yield the records of a capture file, as the ``--json`` contract prints them.

    Raises:
        PcapError: the file cannot be read (see :func:`read_packets`).
    """
    analyzer = PcapAnalyzer(timeout_ns=timeout_ns)
    for packet in read_packets(path):
        yield from analyzer.packet(packet)
    yield from analyzer.finish()

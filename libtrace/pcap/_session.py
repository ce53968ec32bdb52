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

from ..flows import (
    DEFAULT_BUDGET_BYTES,
    Chunk,
    Conversation,
    Endpoint,
    FlowRecord,
    MemoryBudget,
    TcpStream,
)
from ..parsers import Transport
from ..parsers.pairing import DEFAULT_TIMEOUT_NS
from ..parsers.redaction import Redaction
from ._reader import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Packet, read_packets

#: Flows tracked at once; beyond, the oldest is finished early.
MAX_FLOWS = 65536


@dataclass(slots=True)
class RunSummary:
    """What a capture held, for the line printed after its records: so that an
    empty table says why (nothing recognised, on which ports; gaps; desyncs)."""

    connections: dict[str, int] = field(default_factory=dict)  #: by transport
    recognised: dict[str, int] = field(default_factory=dict)  #: connections by protocol
    #: (transport, lower port, higher port) of connections no protocol was found in
    unrecognised: list[tuple[str, int, int]] = field(default_factory=list)
    records: int = 0
    redactions: int = 0  #: secret values replaced in records
    budget_cuts: int = 0  #: flows cut back to stay within the memory budget
    gaps: int = 0  #: holes in TCP streams (missing segments)
    desyncs: int = 0  #: times a parser lost a message boundary

    def add(self, conversation: Conversation) -> None:
        transport = conversation.transport
        self.connections[transport] = self.connections.get(transport, 0) + 1
        self.desyncs += conversation.desyncs
        if conversation.protocol is not None:
            name = conversation.protocol
            self.recognised[name] = self.recognised.get(name, 0) + 1
        else:
            low, high = sorted((conversation.a[1], conversation.b[1]))
            self.unrecognised.append((transport, low, high))

    def text(self) -> str:
        """One line: ``N connections (...); protocol n, ...; unrecognised ...; R records, ...``."""
        total = sum(self.connections.values())
        kinds = ", ".join(f"{n} {t}" for t, n in sorted(self.connections.items()))
        parts = [_count(total, "connection") + (f" ({kinds})" if total else "")]
        if self.recognised:
            parts.append(", ".join(f"{p} {n}" for p, n in sorted(self.recognised.items())))
        if self.unrecognised:
            shown = sorted(set(self.unrecognised))
            ports = ", ".join(f"{t} {a}-{b}" for t, a, b in shown[:MAX_PORTS_SHOWN])
            if len(shown) > MAX_PORTS_SHOWN:
                ports += f" and {len(shown) - MAX_PORTS_SHOWN} more"
            parts.append(f"{len(self.unrecognised)} unrecognised (ports {ports})")
        parts.append(", ".join((_count(self.records, "record"), _count(self.gaps, "gap"),
                                _count(self.desyncs, "desync"))))  # fmt: skip
        if self.redactions:
            parts[-1] += f", {self.redactions} redacted"
        if self.budget_cuts:
            parts[-1] += f", {_count(self.budget_cuts, 'flow')} cut back to the memory budget"
        return "; ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


#: Unrecognised port pairs the summary names.
MAX_PORTS_SHOWN = 8


@dataclass(slots=True)
class _Flow:
    conversation: Conversation
    streams: dict[Endpoint, TcpStream] = field(default_factory=dict)


class PcapAnalyzer:
    """Turn packets into records (:class:`~libtrace.flows.FlowRecord`)."""

    def __init__(
        self, *, timeout_ns: int = DEFAULT_TIMEOUT_NS, redaction: Redaction | None = None,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
    ) -> None:  # fmt: skip
        self.timeout_ns = timeout_ns
        #: what all flows' parsers may buffer at once (see libtrace.flows.budget)
        self.budget = MemoryBudget(budget_bytes)
        #: the secrets taken out of records (default on; ``Redaction.off()`` keeps them)
        self.redaction = redaction if redaction is not None else Redaction()
        self._flows: dict[tuple[str, Endpoint, Endpoint], _Flow] = {}
        self.last_ts = 0
        #: what the capture held, complete once :meth:`finish` has run
        self.summary = RunSummary()

    def packet(self, pkt: Packet) -> list[FlowRecord]:
        """Take one packet; return the records it completes."""
        self.last_ts = max(self.last_ts, pkt.ts_ns)
        src, dst = (pkt.src, pkt.sport), (pkt.dst, pkt.dport)
        key = (pkt.transport, *sorted((src, dst)))
        flow = self._flows.get(key)  # type: ignore[arg-type]
        out: list[FlowRecord] = []
        if flow is None:
            if len(self._flows) >= MAX_FLOWS:
                oldest = next(iter(self._flows))
                out += self._finish(self._flows.pop(oldest))
            transport: Transport = pkt.transport  # type: ignore[assignment]
            conversation = Conversation(transport, src, dst, timeout_ns=self.timeout_ns,
                                        redaction=self.redaction)  # fmt: skip
            flow = self._flows[key] = _Flow(conversation)  # type: ignore[index]
        conv = flow.conversation
        if conv.given_up:
            return out
        if self.budget.grow(len(pkt.payload)):
            out += self._keep_to_budget()
        if pkt.transport == "udp":
            records = conv.datagram(src, pkt.payload, pkt.ts_ns)
            return out + self._counted(conv.flow_records(records))
        stream = flow.streams.setdefault(src, TcpStream())
        # Holes of either direction age with every packet of the flow (a bare
        # ACK included): what waits behind one must not wait for the end.
        for sender in (src, dst):
            waiting = flow.streams.get(sender)
            if waiting is not None and waiting.pending:
                out += self._deliver(conv, sender, waiting, waiting.expire(pkt.ts_ns))
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
        return out + self._deliver(conv, src, stream, chunks)

    def _deliver(self, conv: Conversation, sender: Endpoint, stream: TcpStream,
                 chunks: list[Chunk]) -> list[FlowRecord]:
        """In-order chunks of one direction to the conversation; the records they complete."""
        if not chunks and not stream.eof:
            return []
        self.summary.gaps += sum(1 for chunk in chunks if chunk.gap)
        return self._counted(conv.flow_records(conv.chunks(sender, chunks, stream.eof,
                                                       self.last_ts)))

    def _keep_to_budget(self) -> list[FlowRecord]:
        # A flow holds bytes in its parser and, behind a hole, in its TCP reassembly.
        held = ((flow.conversation.buffered()
                 + sum(stream.pending_bytes for stream in flow.streams.values()), flow)
                for flow in self._flows.values())  # fmt: skip
        out: list[FlowRecord] = []
        for flow in self.budget.over(held):
            conv = flow.conversation
            for sender, stream in flow.streams.items():
                if stream.pending:
                    out += self._deliver(conv, sender, stream, stream.give_up())
            out += self._counted(conv.flow_records(conv.cut_back(self.last_ts)))
        self.summary.budget_cuts = self.budget.cuts
        return out

    def finish(self) -> list[FlowRecord]:
        """The capture ended: flush every flow."""
        out: list[FlowRecord] = []
        for flow in self._flows.values():
            out += self._finish(flow)
        self._flows.clear()
        return out

    def _finish(self, flow: _Flow) -> list[FlowRecord]:
        conv = flow.conversation
        records = []
        for sender, stream in flow.streams.items():
            chunks = stream.flush()
            self.summary.gaps += sum(1 for chunk in chunks if chunk.gap)
            records += conv.chunks(sender, chunks, True, self.last_ts)
        records += conv.finish(self.last_ts)
        self.summary.add(conv)
        return self._counted(conv.flow_records(records))

    def _counted(self, records: list[FlowRecord]) -> list[FlowRecord]:
        self.summary.records += len(records)
        self.summary.redactions = self.redaction.count
        return records


def analyze(
    path: str, *, timeout_ns: int = DEFAULT_TIMEOUT_NS, analyzer: PcapAnalyzer | None = None
) -> Iterator[FlowRecord]:
    """Yield the records of a capture file (their ``to_json()`` is what ``--json``
    prints), through ``analyzer``, whose ``summary`` is complete when they end.

    Raises:
        PcapError: the file cannot be read (see :func:`read_packets`).
    """
    if analyzer is None:
        analyzer = PcapAnalyzer(timeout_ns=timeout_ns)
    for packet in read_packets(path):
        yield from analyzer.packet(packet)
    yield from analyzer.finish()

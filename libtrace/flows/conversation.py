"""One connection's application layer, shared by the pcap and the live pipelines.

Theory of operation: a :class:`Conversation` receives the in-order bytes of
the two senders of one connection (endpoints ``a`` and ``b``), gaps and ends
of stream; how those bytes were obtained (TCP segments in a capture, or the
tracer's chunks ordered by socket offset) is the caller's business.  Until
its protocol is known it keeps in-order chunks (at most
:data:`MAX_UNDECIDED_BYTES` per sender) and offers each new one to
inference.  The client is given by the caller when it saw the connection
start (a SYN, a connect or an accept); failing that, inference says which
side sent a request; failing that, the lower port is the server.  Once
decided, the kept chunks are replayed into the protocol's parser
(``mid_stream`` unless the start was seen), and from then on chunks, gaps
and ends of stream go straight to it; its events go through a
:class:`~libtrace.parsers.Pairer`.  A conversation whose protocol stays
unknown, has no parser yet, or is not among those wanted, produces nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from ..frozen import hand_init
from ..parsers import (
    PARSERS,
    SPECS,
    Desync,
    Direction,
    Inference,
    Pairer,
    Record,
    Redactor,
    StreamParser,
    Transport,
    infer,
)
from ..parsers.pairing import DEFAULT_TIMEOUT_NS
from ..parsers.redaction import Redaction
from .chunk import Chunk


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """A record of one connection: the exchange, and the endpoints as ``ip:port``.

    Both front-ends give records in this form (the live one with the traced
    process's context, :class:`~libtrace.records.LiveRecord`); they stay typed
    until the output, where :meth:`to_json` makes the ``libtrace pcap --json``
    object that :mod:`libtrace.output` turns into rows.
    """

    exchange: Record
    client: str | None
    server: str | None

    def __init__(  # pragma: no cover
        self, exchange: Record, client: str | None, server: str | None
    ) -> None:
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.exchange = exchange  # type: ignore[misc]
        self.client = client  # type: ignore[misc]
        self.server = server  # type: ignore[misc]

    @property
    def protocol(self) -> str:
        return self.exchange.protocol

    def to_json(self, *, headers: bool = False) -> dict[str, Any]:
        """The JSON object of the ``libtrace pcap --json`` contract (with
        ``headers``, HTTP messages list their headers, secrets redacted)."""
        return self.exchange.to_dict(self.client, self.server, headers=headers)


hand_init(FlowRecord)

#: Direction's members as module constants (compiled, ``Direction.REQUEST`` is an
#: attribute lookup on the enum class: see ``libtrace.parsers._events``).
_REQUEST: Final = Direction.REQUEST
_RESPONSE: Final = Direction.RESPONSE

#: Bytes kept per sender while the protocol is undecided; past this the connection is unknown.
MAX_UNDECIDED_BYTES = 64 * 1024
#: Chunks per sender offered to inference before the connection is declared unknown.
MAX_INFERENCE_CHUNKS = 32

Endpoint = tuple[str, int]


def same_endpoint(a: Endpoint | None, b: Endpoint) -> bool:
    """``a == b``, field by field: compiled, ``==`` on two such tuples first boxes
    each into a new tuple object (several hundred instructions per event)."""
    return a is not None and a[1] == b[1] and a[0] == b[0]


def endpoint_text(ep: Endpoint) -> str:
    """``IP:PORT`` (``[IP]:PORT`` for IPv6), as records name their ends."""
    host, port = ep
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ChunkLike(Protocol):
    """In-order bytes of one sender, or a hole of ``gap`` bytes (then ``data`` is empty)."""

    @property
    def ts_ns(self) -> int: ...

    @property
    def data(self) -> bytes: ...

    @property
    def gap(self) -> int: ...


@dataclass(slots=True)
class Conversation:
    """Inference, parser and pairer of one connection between endpoints ``a`` and ``b``.

    Args:
        transport: ``"tcp"`` (byte streams) or ``"udp"`` (each payload a datagram).
        client: the endpoint that opened the connection, when its start was seen.
        protocols: parse only these protocols (``None``: all).
        redaction: the secrets taken out of every message before pairing, by
            its protocol's rule (shared by a front-end's conversations, which
            read its count).
    """

    transport: Transport
    a: Endpoint
    b: Endpoint
    timeout_ns: int = DEFAULT_TIMEOUT_NS
    client: Endpoint | None = None
    protocols: frozenset[str] | None = None
    protocol: str | None = None
    given_up: bool = False
    parser: StreamParser | None = None
    pairer: Pairer | None = None
    #: Desync events the parser emitted (gaps, unparsable bytes)
    desyncs: int = 0
    #: what is taken out of messages (on by default; ``Redaction.off()`` keeps all)
    redaction: Redaction = field(default_factory=Redaction)
    _redact: Redactor | None = field(init=False, default=None)
    _started: bool = field(init=False, default=False)
    _kept: dict[Endpoint, list[ChunkLike]] = field(init=False, default_factory=dict)
    _kept_eof: set[Endpoint] = field(init=False, default_factory=set)
    _eof_sent: set[Endpoint] = field(init=False, default_factory=set)
    _tries: int = field(init=False, default=0)
    _ends: tuple[str, str] | None = field(init=False, default=None)
    _ends_of: Endpoint | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._started = self.client is not None

    def opened_by(self, sender: Endpoint) -> None:
        """``sender`` started the connection (a SYN, a connect): it is the client."""
        if self.client is None:
            self.client, self._started = sender, True

    @property
    def server(self) -> Endpoint:
        return self.b if self.client == self.a else self.a

    def direction(self, sender: Endpoint) -> Direction:
        return _REQUEST if same_endpoint(self.client, sender) else _RESPONSE

    # -- input -----------------------------------------------------------------------
    def chunks(
        self, sender: Endpoint, chunks: Sequence[ChunkLike], eof: bool, now_ns: int
    ) -> list[Record]:
        """In-order chunks from ``sender`` (``eof``: its stream ended at ``now_ns``)."""
        if self.given_up:
            return []
        parser = self.parser
        if parser is None:
            self._kept.setdefault(sender, []).extend(chunks)
            if eof:
                self._kept_eof.add(sender)
            return self._decide(now_ns, new=(sender, chunks))
        out: list[Record] = []
        direction = self.direction(sender)
        for chunk in chunks:
            if chunk.gap:
                parser.feed_gap(direction, chunk.gap, chunk.ts_ns)
            else:
                parser.feed(direction, chunk.data, chunk.ts_ns)
            out += self._drain()
        if eof and sender not in self._eof_sent:
            self._eof_sent.add(sender)
            parser.feed(direction, b"", now_ns)
            out += self._drain()
        return out

    def data(self, sender: Endpoint, data: bytes, ts_ns: int) -> list[Record]:
        """:meth:`chunks` of one chunk of ``data`` (not empty, no gap before it)
        without a chunk object: the live pipeline's hot path."""
        parser = self.parser
        if parser is None or self.given_up:
            return self.chunks(sender, [Chunk(ts_ns, data)], False, ts_ns)
        parser.feed(self.direction(sender), data, ts_ns)
        return self._drain()

    def datagram(self, sender: Endpoint, payload: bytes, ts_ns: int) -> list[Record]:
        """One UDP datagram from ``sender``."""
        if self.given_up or not payload:
            return []
        if self.parser is None:
            verdict = infer(payload, transport="udp", ports=(self.a[1], self.b[1]))
            if not self._start(verdict, sender):
                self._tries += 1
                self.given_up = self.given_up or self._tries >= MAX_INFERENCE_CHUNKS
                return []
        assert self.parser is not None
        self.parser.feed(self.direction(sender), payload, ts_ns)
        return self._drain()

    def buffered(self) -> int:
        """Bytes this conversation holds: its parser's buffers, or the chunks kept
        while its protocol is undecided."""
        if self.parser is not None:
            return self.parser.buffered()
        return sum(len(chunk.data) for chunks in self._kept.values() for chunk in chunks)

    def cut_back(self, now_ns: int) -> list[Record]:
        """Drop what this conversation buffers (a memory budget says so): the
        parser's buffers become gaps, which it reports as desyncs; undecided
        chunks are forgotten.  Returns the records that completes."""
        if self.parser is None:
            self._kept.clear()
            return []
        for direction in Direction:
            held = self.parser.buffered_in(direction)
            if held:
                self.parser.feed_gap(direction, held, now_ns)
        return self._drain()

    def finish(self, now_ns: int) -> list[Record]:
        """The connection is over (every sender's stream already ended): flush it."""
        out: list[Record] = []
        if self.parser is None and not self.given_up and self.transport == "tcp":
            out += self._decide(now_ns, force=True)
        if self.pairer is not None:
            out += self.pairer.flush(now_ns)
        return out

    def endpoints(self) -> tuple[str, str]:
        """The client's and the server's ``address:port`` (``a`` is the client while
        no side is known)."""
        if self.client is None:
            return endpoint_text(self.a), endpoint_text(self.server)
        # Made once per client: every record of the connection asks.
        if self._ends is None or not same_endpoint(self._ends_of, self.client):
            self._ends = endpoint_text(self.client), endpoint_text(self.server)
            self._ends_of = self.client
        return self._ends

    def flow_records(self, records: list[Record]) -> list[FlowRecord]:
        """The records with this connection's endpoints."""
        client, server = self.endpoints()
        return [FlowRecord(record, client, server) for record in records]

    # -- internals ---------------------------------------------------------------------
    def _decide(
        self,
        now_ns: int,
        new: tuple[Endpoint, Sequence[ChunkLike]] | None = None,
        force: bool = False,
    ) -> list[Record]:
        ports = (self.a[1], self.b[1])
        candidates: list[tuple[Inference, Endpoint]] = []
        senders = [new] if new else list(self._kept.items())
        for sender, chunks in senders:
            for chunk in chunks:
                if chunk.data:
                    self._tries += 1
                    candidates.append((infer(chunk.data, ports=ports), sender))
            # A reader that takes a length prefix, then the body (tansu reads Kafka's
            # 4 bytes first), splits one message in two chunks: offer the sender's
            # bytes so far too, as infer() expects a direction's first bytes.
            so_far = self._kept.get(sender, [])
            if len(so_far) > 1 and all(c.data for c in so_far):
                prefix = b"".join(c.data for c in so_far)  # at most MAX_UNDECIDED_BYTES
                candidates.append((infer(prefix, ports=ports), sender))
        candidates = [c for c in candidates if c[0].protocol is not None]
        if candidates:
            verdict, sender = max(candidates, key=lambda c: c[0].confidence)
            if self._start(verdict, sender):
                out: list[Record] = []
                kept, ended = self._kept, self._kept_eof
                self._kept, self._kept_eof = {}, set()
                # Both senders' kept chunks in the order they were sent (stable:
                # a sender's own stay in order), so that an answer is never fed
                # before its question: pairing by key (MQTT's PUBREL and PUBCOMP,
                # Kafka's correlation ids) needs the order across the two.
                waiting = sorted(
                    ((chunk.ts_ns, kept_sender, chunk)
                     for kept_sender, chunks in kept.items() for chunk in chunks
                     if chunk.data or chunk.gap),
                    key=lambda item: item[0],
                )  # fmt: skip
                for _, kept_sender, chunk in waiting:
                    out += self.chunks(kept_sender, [chunk], False, now_ns)
                for kept_sender in kept:
                    if kept_sender in ended:
                        out += self.chunks(kept_sender, [], True, now_ns)
                return out
        kept_bytes = max((sum(len(c.data) for c in v) for v in self._kept.values()), default=0)
        if force or self._tries >= MAX_INFERENCE_CHUNKS or kept_bytes > MAX_UNDECIDED_BYTES:
            self.given_up = True
            self._kept.clear()
        return []

    def _start(self, verdict: Inference, sender: Endpoint) -> bool:
        parser_class = PARSERS.get(verdict.protocol or "")
        wanted = self.protocols is None or verdict.protocol in self.protocols
        if parser_class is None or self.transport not in parser_class.transports or not wanted:
            if verdict.protocol is not None:
                # Recognised, but parsed only by a later version, or not wanted.
                self.given_up = True
            return False
        if self.client is None:
            if verdict.direction is not None:
                self.client = (
                    sender
                    if verdict.direction is _REQUEST
                    else (self.b if sender == self.a else self.a)
                )
            else:
                self.client = self.a if self.a[1] > self.b[1] else self.b
        self.protocol = verdict.protocol
        self.parser = parser_class(
            transport=self.transport, mid_stream=self.transport == "tcp" and not self._started
        )
        self.pairer = Pairer(timeout_ns=self.timeout_ns)
        spec = SPECS.get(self.protocol or "")
        if self.redaction.enabled and spec is not None:
            self._redact = spec.redact
        return True

    def _drain(self) -> list[Record]:
        assert self.parser is not None and self.pairer is not None
        records: list[Record] = []
        redact = self._redact
        for event in self.parser.events():
            if isinstance(event, Desync):
                self.desyncs += 1
            elif redact is not None:
                # Before pairing: no record, and nothing made of one, holds the secret.
                event = redact(event, self.redaction)
            records += self.pairer.add(event)
        return records

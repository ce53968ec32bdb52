"""Live records: tracer events in, :class:`LiveRecord`\\ s (pcap's plus who and where) out.

Theory of operation: :class:`RecordPipeline` is sans-IO — it takes
:class:`~libtrace.tracer.events.SocketEvent` objects one at a time (from a
running :class:`~libtrace.tracer.tracer.Tracer`, or recorded ones) and
returns the records they complete, typed (:class:`LiveRecord`) until the
caller's output turns them into JSON (``to_json``) or rows.  A connection is one traced socket
of one process: the key is ``(pid, fd, tls)`` — TLS plaintext from the Go
uprobes is a stream apart from the same socket's ciphertext, with offsets of
its own — plus, for UDP, the peer, since one unconnected socket talks to many.
TCP data events go through a :class:`~libtrace.flows.StreamReassembler`
(one for socket bytes, one for TLS plaintext) that orders them by the
kernel's byte offsets and turns holes (lost events, the payload cap) into
gaps, which the parser receives as gaps: never glued.  The in-order bytes go
to the connection's :class:`~libtrace.records.Conversation`, the same
inference, parser and pairing that ``libtrace pcap`` runs, with the local
endpoint sending egress bytes and the remote one ingress bytes.

Each record says which end of the connection the traced process is
(``side``): a connect makes it the client and an accept the server; without
either (the connection predates the trace) the side that sent the first
request is the client.  A connection traced from both ends (both processes
on this host) is two connections here and yields each record twice, once
per side, labelled.  A close ends a connection: both streams end (the
parser gets EOF), then the pairer is flushed, so unanswered requests come
out as ``unknown`` or ``timeout``.

Memory is bounded: reassembly holds at most its pending chunks per stream,
a conversation its undecided bytes, a parser its buffer limit, a pairer its
pending requests, and the pipeline at most :data:`MAX_CONNECTIONS`
connections; connections idle for :data:`IDLE_TIMEOUT_NS` (their close was
never seen: the process died, the event was lost) are finished.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Final

from ..flows import (
    DEFAULT_BUDGET_BYTES,
    Chunk,
    ChunkLike,
    Conversation,
    Endpoint,
    FlowRecord,
    MemoryBudget,
    StreamChunk,
    StreamReassembler,
)
from ..flows.offsets import Stream, socket_slot
from ..frozen import hand_init
from ..parsers import PARSERS, Record
from ..parsers.pairing import DEFAULT_TIMEOUT_NS
from ..parsers.redaction import Redaction
from ..tracer.events import (
    TLS_BIT,
    DataFields,
    Direction,
    EventType,
    SocketEvent,
    data_fields_reader,
)
from .containers import Container, ContainerResolver

if TYPE_CHECKING:
    from ..pcap.writer import PcapngWriter
    from ..tracer.tracer import Tracer

#: Connections tracked at once; beyond, the oldest is finished early.
MAX_CONNECTIONS = 16384
#: A TCP connection without events this long is finished (its close was never seen).
IDLE_TIMEOUT_NS = 300 * 1_000_000_000
#: A UDP peer without datagrams this long is finished: DNS exchanges last milliseconds,
#: and an unconnected server socket sees a new peer (port) per client query.
UDP_IDLE_TIMEOUT_NS = 30 * 1_000_000_000
#: Idle connections are looked for at most this often (event time).
SWEEP_INTERVAL_NS: Final = 1_000_000_000

#: (pid, fd, tls, the peer for UDP or None)
ConnKey = tuple[int, int, bool, Endpoint | None]


@dataclass(slots=True)
class PipelineStats:
    """Counters of one pipeline."""

    events: int = 0  #: events taken
    records: int = 0  #: records returned
    connections: int = 0  #: connections opened
    redactions: int = 0  #: secret values replaced in records (see parsers.redaction)
    budget_cuts: int = 0  #: connections cut back to stay within the memory budget
    budget_bytes: int = 0  #: bytes those held
    gaps: int = 0  #: holes reported to parsers (lost events, the payload cap)
    gap_bytes: int = 0  #: bytes in those holes
    truncated_datagrams: int = 0  #: UDP datagrams cut by the payload cap (not parsed)
    desyncs: int = 0  #: times a parser lost message boundaries (of finished connections)
    expired: int = 0  #: connections finished for idleness
    evicted: int = 0  #: connections finished early to stay within MAX_CONNECTIONS


@dataclass(frozen=True, slots=True)
class LiveRecord(FlowRecord):
    """A record the tracer saw, with who and where: the traced process, its end
    of the connection, whether the bytes were TLS plaintext, its container."""

    pid: int
    comm: str
    side: str  #: "client" or "server": the traced process's end
    tls: bool  #: from the Go TLS uprobes (plaintext), not the socket's bytes
    container: Container | None

    def __init__(  # pragma: no cover
        self, exchange: Record, client: str | None, server: str | None, pid: int, comm: str,
        side: str, tls: bool, container: Container | None,
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.exchange = exchange  # type: ignore[misc]
        self.client = client  # type: ignore[misc]
        self.server = server  # type: ignore[misc]
        self.pid = pid  # type: ignore[misc]
        self.comm = comm  # type: ignore[misc]
        self.side = side  # type: ignore[misc]
        self.tls = tls  # type: ignore[misc]
        self.container = container  # type: ignore[misc]

    def to_json(self, *, headers: bool = False) -> dict[str, Any]:
        """The ``libtrace pcap --json`` object plus ``pid``, ``comm``, ``side``,
        ``tls`` and ``container`` (the ``trace --records --json`` contract)."""
        out = FlowRecord.to_json(self, headers=headers)
        out["pid"], out["comm"], out["side"], out["tls"] = self.pid, self.comm, self.side, self.tls
        out["container"] = self.container.to_dict() if self.container is not None else None
        return out


hand_init(LiveRecord)


#: The tracer's enum members as module constants: compiled code reads these
#: directly, where ``EventType.DATA`` is an attribute lookup on the enum class
#: (several hundred instructions each under Python 3.11's ``EnumType``: callgrind).
_DATA: Final = EventType.DATA
_CONNECT: Final = EventType.CONNECT
_ACCEPT: Final = EventType.ACCEPT
_CLOSE: Final = EventType.CLOSE
_EXIT: Final = EventType.EXIT
_EGRESS: Final = Direction.EGRESS
_TLS_BIT: Final = TLS_BIT  # ours: the events module is not compiled, its names are lookups


def _tcp_slot(pid: int, fd: int, tls: bool) -> int:
    """A TCP connection's key in ``RecordPipeline._tcp``."""
    return socket_slot(pid, fd, 1 if tls else 0)


@dataclass(slots=True)
class _Connection:
    key: ConnKey
    local: Endpoint
    remote: Endpoint
    conversation: Conversation
    comm: str
    container: Container | None
    #: "client" after a connect, "server" after an accept; else decided at the first record
    side: str | None
    last_ns: int
    udp: bool
    #: TCP: the reassembler's streams of the two directions, kept (not looked up
    #: per chunk) from the first chunk of each
    egress: Stream | None = None
    ingress: Stream | None = None

    def sender(self, direction: Direction) -> Endpoint:
        return self.local if direction is _EGRESS else self.remote

    def stream(self, streams: StreamReassembler, direction: Direction) -> Stream:
        """Its stream in ``direction`` (asked of ``streams`` once, or again if stale)."""
        kept = self.egress if direction is _EGRESS else self.ingress
        if kept is not None and kept.open:
            return kept
        pid, fd, _, _ = self.key
        kept = streams.stream(pid, fd, direction)
        if direction is _EGRESS:
            self.egress = kept
        else:
            self.ingress = kept
        return kept


@dataclass(slots=True)
class _Streams:
    """The reassemblers: TLS plaintext offsets are apart from the socket's."""

    plain: StreamReassembler = field(default_factory=StreamReassembler)
    tls: StreamReassembler = field(default_factory=StreamReassembler)

    def of(self, tls: bool) -> StreamReassembler:
        return self.tls if tls else self.plain


class RecordPipeline:
    """Turn tracer events into :class:`LiveRecord`\\ s; see the module docstring.

    Args:
        protocols: emit only records of these protocols (``None``: all); the
            others are not even parsed.
        containers: attributes connections to containers (``None``: every
            record's ``container`` is null).
        timeout_ns: a request unanswered this long when its connection ends
            is a ``timeout``, a younger one ``unknown``.
        redaction: the secrets taken out of records (default: on, the
            default names); ``Redaction.off()`` keeps them.
        budget_bytes: what all connections' parsers may buffer at once (see
            :mod:`libtrace.flows.budget`).
    """

    def __init__(
        self,
        *,
        protocols: Iterable[str] | None = None,
        containers: ContainerResolver | None = None,
        timeout_ns: int = DEFAULT_TIMEOUT_NS,
        max_connections: int = MAX_CONNECTIONS,
        idle_timeout_ns: int = IDLE_TIMEOUT_NS,
        udp_idle_timeout_ns: int = UDP_IDLE_TIMEOUT_NS,
        redaction: Redaction | None = None,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
    ) -> None:
        self.protocols = frozenset(protocols) if protocols is not None else None
        unknown = (self.protocols or frozenset()) - set(PARSERS)
        if unknown:
            raise ValueError(f"no parser for {', '.join(sorted(unknown))}")
        self.containers = containers
        self.timeout_ns = timeout_ns
        self.max_connections = max_connections
        self.idle_timeout_ns = idle_timeout_ns
        self.udp_idle_timeout_ns = udp_idle_timeout_ns
        self.redaction = redaction if redaction is not None else Redaction()
        self.budget = MemoryBudget(budget_bytes)
        self._stats = PipelineStats()
        self._conns: dict[ConnKey, _Connection] = {}
        #: the TCP ones again, by _tcp_slot(pid, fd, tls): the per-event lookup
        self._tcp: dict[int, _Connection] = {}
        #: (pid, fd) → keys of its connections (socket and TLS streams, UDP peers)
        self._by_fd: dict[tuple[int, int], set[ConnKey]] = {}
        #: (pid, fd) → "client" after a connect, "server" after an accept
        self._opened: dict[tuple[int, int], str] = {}
        self._streams = _Streams()
        self._last_sweep = 0
        self._last_ns = 0
        #: reads a data event's fields in one call where the compiled decoder is
        self._fields = data_fields_reader()

    # -- input -------------------------------------------------------------------------
    def feed(self, event: SocketEvent) -> list[LiveRecord]:
        """Take one event; return the records it completes."""
        self._stats.events += 1
        # The event's fields in one call: the event class is not compiled, so
        # each attribute read would be a generic lookup (and a property, such as
        # SocketEvent.tls, an interpreted call).
        fields = self._fields(event)
        kind, ts = fields[0], fields[1]
        if ts > self._last_ns:
            self._last_ns = ts
        sweep = ts - self._last_sweep >= SWEEP_INTERVAL_NS
        if kind is _DATA and not sweep:
            return self._data(event, fields)  # most events: no list of our own
        out: list[LiveRecord] = self.expire(ts) if sweep else []
        if kind is _DATA:
            out += self._data(event, fields)
        elif kind is _CONNECT or kind is _ACCEPT:
            # A new socket under this fd number: whatever was there is over.
            out += self._close_fd(event.pid, event.fd, ts)
            if len(self._opened) >= self.max_connections:
                del self._opened[next(iter(self._opened))]
            side = "client" if kind is _CONNECT else "server"
            self._opened[(event.pid, event.fd)] = side
        elif kind is _CLOSE:
            out += self._close_fd(event.pid, event.fd, ts)
        elif kind is _EXIT:
            for pid, fd in [k for k in self._by_fd if k[0] == event.pid]:
                out += self._close_fd(pid, fd, ts)
        return out

    def expire(self, now_ns: int) -> list[LiveRecord]:
        """Finish the connections idle since before ``now_ns`` minus the idle timeouts."""
        self._last_sweep = now_ns
        out: list[LiveRecord] = []
        idle = [
            conn
            for conn in self._conns.values()
            if now_ns - conn.last_ns
            > (self.udp_idle_timeout_ns if conn.udp else self.idle_timeout_ns)
        ]
        for conn in idle:
            self._stats.expired += 1
            out += self._finish(conn, now_ns)
        return out

    def flush(self) -> list[LiveRecord]:
        """The trace ended: finish every connection."""
        out: list[LiveRecord] = []
        for conn in list(self._conns.values()):
            out += self._finish(conn, self._last_ns)
        self._opened.clear()
        return out

    @property
    def stats(self) -> PipelineStats:
        """The counters so far (desyncs include those of open connections)."""
        live = sum(conn.conversation.desyncs for conn in self._conns.values())
        values = {f.name: getattr(self._stats, f.name) for f in fields(PipelineStats)}
        values["desyncs"] += live
        values["redactions"] = self.redaction.count
        values["budget_cuts"], values["budget_bytes"] = self.budget.cuts, self.budget.cut_bytes
        return PipelineStats(**values)

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self._conns)

    def buffered(self) -> int:
        """Bytes the open connections hold now, in their parsers and in reassembly
        (early chunks waiting for a hole): what the memory budget bounds."""
        return sum(self._held(conn) for conn in self._conns.values())

    # -- internals ---------------------------------------------------------------------
    def _data(self, event: SocketEvent, fields: DataFields) -> list[LiveRecord]:
        _, ts, l4, raddr, rport, flags, pid, fd, data, direction, offset, size = fields
        if not l4:
            return []  # identity unknown (no-BTF socket gone before /proc was read)
        udp = l4 == "udp"
        tls = flags & _TLS_BIT != 0
        if udp:
            conn = self._conns.get((pid, fd, tls, (raddr, rport)))
        else:
            conn = self._tcp.get(_tcp_slot(pid, fd, tls))
        # What comes out before this chunk's records; None (no list) as a rule.
        before: list[LiveRecord] | None = None
        if conn is not None and not (conn.remote[1] == rport and conn.remote[0] == raddr):
            before = self._finish(conn, ts)  # the fd now names another socket
            conn = None
        if conn is None:
            before = (before or []) + self._make_room(ts)
            conn = self._open((pid, fd, tls, (raddr, rport) if udp else None), event, udp)
        conn.last_ns = ts
        conv = conn.conversation
        if udp:
            if len(data) < size:
                self._stats.truncated_datagrams += 1
                return before or []
            records = conv.datagram(conn.sender(direction), data, ts)
        else:
            streams = self._streams.of(tls)
            if streams.take_in_order(conn.stream(streams, direction), offset, size, len(data)):
                # Whole and next in its stream, as nearly every chunk is.
                records = conv.data(conn.sender(direction), data, ts)
            else:
                records = []
                for chunk in streams.feed(event):
                    records += self._chunk(conn, chunk)
        out = self._emit(conn, records)  # a new list, empty or not
        if before:
            out[:0] = before
        if self.budget.grow(len(data)):
            out += self._keep_to_budget(ts)
        return out

    def _held(self, conn: _Connection) -> int:
        held = conn.conversation.buffered()
        if not conn.udp:
            pid, fd, tls, _ = conn.key
            held += self._streams.of(tls).held(pid, fd)
        return held

    def _keep_to_budget(self, now_ns: int) -> list[LiveRecord]:
        held = ((self._held(conn), conn) for conn in self._conns.values())
        out: list[LiveRecord] = []
        for conn in self.budget.over(held):
            records: list[Record] = []
            if not conn.udp:
                # What reassembly held back goes on (its holes declared gaps),
                # then the parser's buffers are cut.
                pid, fd, tls, _ = conn.key
                for chunk in self._streams.of(tls).release(pid, fd):
                    records += self._chunk(conn, chunk)
            records += conn.conversation.cut_back(now_ns)
            out += self._emit(conn, records)
        return out

    def _chunk(self, conn: _Connection, chunk: StreamChunk) -> list[Record]:
        # The reassembler reports every hole once, the payload cap's at once
        # (a chunk of no data right after the cut one); a chunk with data is
        # a flow chunk as it is.
        ts = chunk.ts_ns if chunk.event is not None else self._last_ns
        pieces: list[ChunkLike] = []
        if chunk.gap:
            pieces.append(self._gap(ts, chunk.gap))
        if chunk.data:
            pieces.append(chunk if chunk.event is not None else Chunk(ts, chunk.data))
        return conn.conversation.chunks(conn.sender(chunk.key[2]), pieces, False, ts)

    def _gap(self, ts: int, size: int) -> Chunk:
        self._stats.gaps += 1
        self._stats.gap_bytes += size
        return Chunk(ts, gap=size)

    def _open(self, key: ConnKey, event: SocketEvent, udp: bool) -> _Connection:
        pid, fd = key[0], key[1]
        local, remote = (event.laddr, event.lport), (event.raddr, event.rport)
        side = self._opened.get((pid, fd))
        client = {"client": local, "server": remote}.get(side or "")
        conversation = Conversation(
            "udp" if udp else "tcp",
            local,
            remote,
            timeout_ns=self.timeout_ns,
            client=client,
            protocols=self.protocols,
            redaction=self.redaction,
        )
        container = (
            self.containers.resolve(event.cgroup_id, pid) if self.containers is not None else None
        )
        conn = _Connection(key, local, remote, conversation, event.comm, container, side,
                           event.ts_ns, udp)  # fmt: skip
        self._conns[key] = conn
        if not udp:
            self._tcp[_tcp_slot(pid, fd, key[2])] = conn
        self._by_fd.setdefault((pid, fd), set()).add(key)
        self._stats.connections += 1
        return conn

    def _make_room(self, now_ns: int) -> list[LiveRecord]:
        if len(self._conns) < self.max_connections:
            return []
        out = self.expire(now_ns)
        while len(self._conns) >= self.max_connections:
            self._stats.evicted += 1
            out += self._finish(next(iter(self._conns.values())), now_ns)
        return out

    def _close_fd(self, pid: int, fd: int, now_ns: int) -> list[LiveRecord]:
        self._opened.pop((pid, fd), None)
        out: list[LiveRecord] = []
        for key in list(self._by_fd.get((pid, fd), ())):
            out += self._finish(self._conns[key], now_ns)
        return out

    def _finish(self, conn: _Connection, now_ns: int) -> list[LiveRecord]:
        """End both streams of ``conn`` (releasing what reassembly held), flush its pairer."""
        pid, fd, tls, _ = conn.key
        del self._conns[conn.key]
        if not conn.udp:
            del self._tcp[_tcp_slot(pid, fd, tls)]
        keys = self._by_fd[(pid, fd)]
        keys.discard(conn.key)
        if not keys:
            del self._by_fd[(pid, fd)]
        conv = conn.conversation
        records: list[Record] = []
        if not conn.udp:
            for chunk in self._streams.of(tls).close(pid, fd):
                records += self._chunk(conn, chunk)
            for sender in (conn.local, conn.remote):
                records += conv.chunks(sender, (), True, now_ns)
        records += conv.finish(now_ns)
        self._stats.desyncs += conv.desyncs
        return self._emit(conn, records)

    def _emit(self, conn: _Connection, records: list[Record]) -> list[LiveRecord]:
        if not records:
            return []
        if conn.side is None:
            conn.side = "client" if conn.conversation.client == conn.local else "server"
        client, server = conn.conversation.endpoints()
        pid, _, tls, _ = conn.key
        self._stats.records += len(records)
        return [LiveRecord(record, client, server, pid, conn.comm, conn.side, tls, conn.container)
                for record in records]  # fmt: skip


def trace_records(
    tracer: Tracer,
    duration: float | None = None,
    protocols: Iterable[str] | None = None,
    *,
    pipeline: RecordPipeline | None = None,
    events: Iterable[SocketEvent] | None = None,
    writer: PcapngWriter | None = None,
) -> Iterator[LiveRecord]:
    """Yield the records of a started tracer's events until it stops or ``duration`` passes.

    Connections still open at the end are flushed (their unanswered requests
    come out as ``unknown``).  Pass ``pipeline`` to read its stats afterwards,
    ``events`` to read the tracer's events through something (a
    :class:`~libtrace.tracer.losses.LossWatch`), ``writer`` to write the
    tracer's events to a pcapng as well (a batch at a time, before its records).
    """
    if pipeline is None:
        pipeline = RecordPipeline(protocols=protocols, containers=ContainerResolver())
    if events is None:
        batches: Iterable[list[SocketEvent]] = tracer.batches(duration)
        if writer is not None:
            batches = writer.passing(batches)
        events = (event for batch in batches for event in batch)
    elif writer is not None:  # the caller's own events: each written as it passes
        events = (event for batch in writer.passing([e] for e in events) for event in batch)
    for event in events:
        records = pipeline.feed(event)
        if records:
            yield from records
    yield from pipeline.flush()

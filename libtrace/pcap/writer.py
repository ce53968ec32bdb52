"""Traced byte streams written as a pcapng that Wireshark and tshark read (``trace --write``).

Theory of operation: :class:`PcapngWriter` is fed :class:`SocketEvent` objects
(the tracer's, or recorded ones) and turns each into whole pcapng blocks,
which :meth:`PcapngWriter.flush` writes to a binary file; nothing else does
I/O, so a file cut by Ctrl-C is valid up to its last flushed block.

Every traced TCP socket (``pid``, ``fd``) is a synthetic connection between
its local and remote endpoints: each data chunk is a segment (split at
:data:`MAX_SEGMENT` bytes) whose sequence number is the stream's initial one
plus one plus the chunk's byte ``offset`` in its direction, and whose
acknowledgement is what the other direction has delivered so far.  So a hole
— a lost event, or the bytes a ``--payload-cap`` cut off (``size`` beyond
``captured``) — is a jump of the sequence number that tshark reports as a
segment not captured; no byte is ever invented.  A CONNECT or ACCEPT writes
the three-way handshake (the traced process the client or the server), a
CLOSE the process's FIN and the peer's ACK.  A UDP chunk is a datagram; one
the payload cap cut is written with its headers' full lengths and a shorter
captured length (the pcapng way of saying "snapped").

A connection between two traced processes (both ends on this host) is seen
twice, once from each end; it is written once, from the end seen first
(its peer's CLOSE still writes the peer's FIN), so that the file holds each
packet once, as the wire would.  Go TLS plaintext (``tls`` events) is a
stream of its own, with offsets of its own: it is written as a connection
of its own between the same addresses, the server's port replaced by
:data:`TLS_PLAINTEXT_PORT`, where Wireshark's HTTP dissector reads HTTP/1
and hands an HTTP/2 connection (its preface) to HTTP/2.

Each packet carries a comment (``opt_comment``) naming the traced process
(pid, tid, comm), its fd, the syscall, its container when known, ``tls``
for plaintext, and ``synthesized`` for what the tracer did not see (the
peer's half of a handshake or close).  Timestamps are the events' own,
moved from ``CLOCK_MONOTONIC`` to the epoch.  There is one interface per
address family, described when its first packet is written.

The blocks are written with :mod:`struct`, not with dpkt's pcapng writer:
that one takes every interface up front and sets an Enhanced Packet Block's
original length to its captured length, and a snapped datagram needs the two
to differ.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Protocol, TypeVar

import dpkt  # type: ignore[import-untyped]

from .. import __version__
from ..output import monotonic_to_epoch_ns, open_private
from ..tracer.events import Direction, EventType, SocketEvent
from .frames import ip_frame, tcp_segment, udp_datagram

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["MAX_SEGMENT", "TLS_PLAINTEXT_PORT", "PcapngWriter", "WriterStats"]

#: Payload bytes per synthetic TCP segment: a chunk can be 64 KiB, and an IPv4
#: packet holds at most 65535 bytes with its headers.
MAX_SEGMENT = 65000
#: The server port of Go TLS plaintext streams: HTTP's, so that Wireshark
#: dissects HTTP/1 and HTTP/2 there without being told (decode-as does others).
TLS_PLAINTEXT_PORT = 80
#: Streams remembered at once (UDP sockets meet a new peer per client); beyond,
#: the oldest is forgotten (a later packet of it starts a stream again).
MAX_STREAMS = 16384
#: Captured length the interfaces announce: above any frame written here.
SNAPLEN = 262144

_SHB, _IDB, _EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_END, _OPT_COMMENT = 0, 1
_SHB_USERAPPL = 4
_IF_NAME, _IF_TSRESOL = 2, 9
_LINKTYPE_ETHERNET = 1
#: if_tsresol 9: timestamps in nanoseconds.
_NANOSECONDS = 9

_SYN, _FIN, _ACK, _PUSH = dpkt.tcp.TH_SYN, dpkt.tcp.TH_FIN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_PUSH
_OUT, _IN = Direction.EGRESS, Direction.INGRESS
_OPPOSITE = {_OUT: _IN, _IN: _OUT}
_K = TypeVar("_K")
_V = TypeVar("_V")


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _block(kind: int, body: bytes) -> bytes:
    """A pcapng block: type, total length, body (padded to 32 bits), total length."""
    body += b"\0" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def _options(*options: bytes) -> bytes:
    return b"".join(options) + _option(_OPT_END, b"")


class Resolver(Protocol):
    """What names a process's container (a :class:`~libtrace.records.ContainerResolver`)."""

    def resolve(self, cgroup_id: int, pid: int) -> _Named | None: ...


class _Named(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str | None: ...


@dataclass(slots=True)
class WriterStats:
    """Counters of one writer."""

    packets: int = 0  #: packets written
    gaps: int = 0  #: holes written as sequence jumps (lost events, the payload cap)
    gap_bytes: int = 0  #: bytes in those holes
    snapped: int = 0  #: UDP datagrams the payload cap cut (written snapped)
    mirrored: int = 0  #: events of a connection's second traced end, not written
    unknown: int = 0  #: events of a socket whose addresses are unknown, not written


Endpoint = tuple[str, int]
#: A traced stream: (pid, fd, tls, the peer for UDP or None), as the record pipeline keys it.
_Key = tuple[int, int, bool, Endpoint | None]


@dataclass(slots=True)
class _Stream:
    """One traced socket's connection as the file shows it."""

    local: Endpoint
    remote: Endpoint
    tcp: bool
    wire: tuple[object, ...]  #: the connection's key, the same from either end
    extra: str  #: the end of each comment: the container, "tls"
    isn: dict[Direction, int]
    #: bytes delivered so far per direction (the next offset)
    next: dict[Direction, int] = field(default_factory=lambda: {_OUT: 0, _IN: 0})
    finished: set[Direction] = field(default_factory=set)  #: directions that sent a FIN


class PcapngWriter:
    """Write events as pcapng blocks to ``out``; see the module docstring.

    Args:
        out: a binary file open for writing (the writer never closes it
            unless it opened it: :meth:`open`).
        clock_offset_ns: added to events' ``CLOCK_MONOTONIC`` times for the
            epoch (default: this machine's offset now).
        containers: names the container of each traced process (``None``: no
            container in comments).
    """

    def __init__(self, out: BinaryIO, *, clock_offset_ns: int | None = None,
                 containers: Resolver | None = None) -> None:  # fmt: skip
        self.out = out
        self.clock_offset_ns = (monotonic_to_epoch_ns() if clock_offset_ns is None
                                else clock_offset_ns)  # fmt: skip
        self.containers = containers
        self.stats = WriterStats()
        self._owns_file = False
        self._blocks: list[bytes] = [self._section_header()]
        self._interfaces: dict[str, int] = {}  #: family -> interface id
        self._streams: OrderedDict[_Key, _Stream] = (
            OrderedDict())  # fmt: skip
        #: the wire key of each connection written -> the stream key of its writing end
        self._owners: OrderedDict[tuple[object, ...], _Key] = (
            OrderedDict())  # fmt: skip
        #: connections whose written end closed -> (that end's key, its stream): the
        #: other end's close, if traced, still writes its FIN
        self._closed: OrderedDict[tuple[object, ...], tuple[_Key, _Stream]] = OrderedDict()
        #: (pid, fd) -> "client" or "server", from its CONNECT or ACCEPT
        self._sides: OrderedDict[tuple[int, int], str] = OrderedDict()

    @classmethod
    def open(cls, path: str | os.PathLike[str], **options: object) -> PcapngWriter:
        """A writer of a new file at ``path``, readable by its owner only (it holds
        payloads); :meth:`close` closes it.

        Raises:
            OSError: the path cannot be written (a directory, no permission).
        """
        writer = cls(open_private(path), **options)  # type: ignore[arg-type]
        writer._owns_file = True
        writer.flush()  # the section header: a file of no packet is still a pcapng
        return writer

    def __enter__(self) -> PcapngWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()

    # -- input -------------------------------------------------------------------------
    def write(self, events: Iterable[SocketEvent]) -> None:
        """Feed a batch of events and :meth:`flush` their blocks."""
        for event in events:
            self.feed(event)
        self.flush()

    def passing(self, batches: Iterable[list[SocketEvent]]) -> Iterator[list[SocketEvent]]:
        """``batches`` unchanged, each written (whole blocks, flushed) as it passes:
        what a consumer of events or records puts between the tracer and itself."""
        for batch in batches:
            self.write(batch)
            yield batch

    def feed(self, event: SocketEvent) -> None:
        """Take one event; its packets wait for :meth:`flush`."""
        kind = event.type
        if kind is EventType.DATA:
            self._data(event)
        elif kind is EventType.CONNECT or kind is EventType.ACCEPT:
            self._open(event)
        elif kind is EventType.CLOSE:
            for tls in (False, True):
                self._close(event, tls)
        elif kind is EventType.EXIT:
            for key in [k for k in self._streams if k[0] == event.pid]:
                self._forget(key)

    def flush(self) -> None:
        """Write the whole blocks made so far and flush the file."""
        if self._blocks:
            self.out.write(b"".join(self._blocks))
            self._blocks.clear()
        self.out.flush()

    def close(self) -> None:
        """Flush; close the file if :meth:`open` opened it."""
        self.flush()
        if self._owns_file:
            self.out.close()

    # -- connections -------------------------------------------------------------------
    def _open(self, event: SocketEvent) -> None:
        """A CONNECT or ACCEPT: a new socket under its fd, and its handshake."""
        side = "client" if event.type is EventType.CONNECT else "server"
        self._remember(self._sides, (event.pid, event.fd), side)
        known = self._streams.get((event.pid, event.fd, False, None))
        if known is not None and known.local == (event.laddr, event.lport) and (
                known.remote == (event.raddr, event.rport)):
            return  # the same socket again (a non-blocking connect asked whether it is done)
        for tls in (False, True):
            self._forget((event.pid, event.fd, tls, None))
        if event.l4 != "tcp" or not event.family:
            return
        stream = self._stream(event, False)
        if stream is None:
            return
        first, second = (_OUT, _IN) if side == "client" else (_IN, _OUT)
        isn = stream.isn
        # The peer's packets (sent to the traced end) are written for the traced end's event.
        self._segment(stream, first, event, _SYN, isn[first], 0)
        self._segment(stream, second, event, _SYN | _ACK, isn[second], isn[first] + 1)
        self._segment(stream, first, event, _ACK, isn[first] + 1, isn[second] + 1)

    def _close(self, event: SocketEvent, tls: bool) -> None:
        """The process closed the socket: its FIN, and the peer's ACK of it."""
        key = (event.pid, event.fd, tls, None)
        stream = self._streams.get(key)
        if stream is None:
            # Perhaps the second end of a connection written from the first: its FIN.
            self._peer_close(event, tls)
            return
        if stream.tcp:
            self._fin(stream, _OUT, event, stream.extra)
        self._forget(key)

    def _peer_close(self, event: SocketEvent, tls: bool) -> None:
        if event.l4 != "tcp" or not event.family:
            return
        local, remote = self._endpoints(event, tls)
        wire = ("tcp", tls, frozenset((local, remote)))
        owner = self._owners.get(wire)
        stream = self._streams.get(owner) if owner is not None else None
        if owner is None or stream is None:
            owner, stream = self._closed.pop(wire, (None, None))
        if stream is not None and owner is not None and owner[:2] != (event.pid, event.fd):
            self._fin(stream, _IN, event, self._extra(event, tls))

    def _fin(self, stream: _Stream, direction: Direction, event: SocketEvent,
             extra: str) -> None:  # fmt: skip
        """``event``'s process sent its FIN in ``direction``; the other end ACKs it."""
        if direction in stream.finished:
            return
        seq = self._seq(stream, direction)
        self._segment(stream, direction, event, _FIN | _ACK, seq, self._ack(stream, direction),
                      extra=extra)  # fmt: skip
        stream.finished.add(direction)
        other = _OPPOSITE[direction]
        self._segment(stream, other, event, _ACK, self._seq(stream, other), seq + 1,
                      extra=extra + " synthesized")  # fmt: skip

    def _forget(self, key: _Key) -> None:
        stream = self._streams.pop(key, None)
        if stream is not None and self._owners.get(stream.wire) == key:
            del self._owners[stream.wire]
            if stream.tcp:
                self._remember(self._closed, stream.wire, (key, stream))

    # -- data --------------------------------------------------------------------------
    def _data(self, event: SocketEvent) -> None:
        stream = self._stream(event, event.tls)
        if stream is None:
            return
        if not stream.tcp:
            self._datagram(stream, event)
            return
        direction = event.direction
        hole = event.offset - stream.next[direction]
        if hole > 0:
            self._gap(hole)
        at = self._base(stream, direction) + event.offset
        for start in range(0, max(len(event.data), 1), MAX_SEGMENT):
            piece = event.data[start:start + MAX_SEGMENT]
            if not piece and event.data:
                break
            if piece:
                self._segment(stream, direction, event, _ACK | _PUSH, at + start,
                              self._ack(stream, direction), piece)  # fmt: skip
        if event.truncated:
            self._gap(event.size - event.captured)
        stream.next[direction] = max(stream.next[direction], event.offset + event.size)

    def _datagram(self, stream: _Stream, event: SocketEvent) -> None:
        src, dst = self._ends(stream, event.direction)
        missing = event.size - event.captured if event.truncated else 0
        if missing:
            self.stats.snapped += 1
        udp = udp_datagram(src[1], dst[1], event.data, event.size if missing else None)
        self._packet(stream, ip_frame(src[0], dst[0], udp, extra=missing), missing, event,
                     stream.extra)

    def _gap(self, size: int) -> None:
        self.stats.gaps += 1
        self.stats.gap_bytes += size

    # -- streams -----------------------------------------------------------------------
    def _stream(self, event: SocketEvent, tls: bool) -> _Stream | None:
        """The stream of ``event``'s socket (made on its first event), or None when
        its addresses are unknown or another end of its connection is written."""
        if not event.l4 or not event.family:
            self.stats.unknown += 1
            return None
        tcp = event.l4 == "tcp"
        remote_key = None if tcp else (event.raddr, event.rport)
        key = (event.pid, event.fd, tls, remote_key)
        stream = self._streams.get(key)
        if stream is not None and stream.remote[1] != 0 and (
                (event.raddr, event.rport) != self._real_remote(stream, event)):
            self._forget(key)  # the fd names another socket now
            stream = None
        if stream is None:
            local, remote = self._endpoints(event, tls)
            wire = (event.l4, tls, frozenset((local, remote)))
            owner = self._owners.get(wire)
            if owner is not None and owner != key and owner in self._streams:
                self.stats.mirrored += 1
                return None
            stream = _Stream(local, remote, tcp, wire, self._extra(event, tls),
                             {_OUT: _isn(local, remote), _IN: _isn(remote, local)})  # fmt: skip
            self._remember(self._streams, key, stream)
            self._remember(self._owners, wire, key)
            self._closed.pop(wire, None)  # the endpoints' new connection
        return stream

    @staticmethod
    def _real_remote(stream: _Stream, event: SocketEvent) -> Endpoint:
        """The remote endpoint ``stream`` was made for, as ``event`` would carry it."""
        if event.tls and stream.remote[1] == TLS_PLAINTEXT_PORT:
            return event.raddr, event.rport  # replaced: compare what can be compared
        return stream.remote

    def _endpoints(self, event: SocketEvent, tls: bool) -> tuple[Endpoint, Endpoint]:
        """(local, remote) as written: TLS plaintext with the server's port replaced."""
        local, remote = (event.laddr, event.lport), (event.raddr, event.rport)
        if not tls:
            return local, remote
        side = self._sides.get((event.pid, event.fd))
        if side is None:  # no handshake seen: servers listen on the lower port, as a rule
            side = "server" if event.lport < event.rport else "client"
        if side == "server":
            return (local[0], TLS_PLAINTEXT_PORT), remote
        return local, (remote[0], TLS_PLAINTEXT_PORT)

    def _remember(self, table: OrderedDict[_K, _V], key: _K, value: _V) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > MAX_STREAMS:
            table.popitem(last=False)

    def _extra(self, event: SocketEvent, tls: bool) -> str:
        """The end of the comments of a process's packets: its container, ``tls``."""
        container = (self.containers.resolve(event.cgroup_id, event.pid)
                     if self.containers is not None else None)  # fmt: skip
        text = f" container {container.name or container.id[:12]}" if container else ""
        return text + (" tls" if tls else "")

    # -- packets -----------------------------------------------------------------------
    def _base(self, stream: _Stream, direction: Direction) -> int:
        """The sequence number of the direction's byte at offset 0."""
        return stream.isn[direction] + 1

    def _seq(self, stream: _Stream, direction: Direction) -> int:
        """The direction's next sequence number (its FIN, once sent, counts one)."""
        fin = 1 if direction in stream.finished else 0
        return self._base(stream, direction) + stream.next[direction] + fin

    def _ack(self, stream: _Stream, direction: Direction) -> int:
        """What a segment sent in ``direction`` acknowledges: all the other has delivered."""
        return self._seq(stream, _OPPOSITE[direction])

    def _ends(self, stream: _Stream, direction: Direction) -> tuple[Endpoint, Endpoint]:
        return (stream.local, stream.remote) if direction is _OUT else (stream.remote,
                                                                        stream.local)

    def _segment(self, stream: _Stream, direction: Direction, event: SocketEvent, flags: int,
                 seq: int, ack: int, data: bytes = b"", *, extra: str | None = None) -> None:
        """A TCP segment; one of the handshake sent to the traced end is the peer's,
        which the tracer did not see: its comment says ``synthesized``."""
        src, dst = self._ends(stream, direction)
        segment = tcp_segment(src[1], dst[1], seq, ack, flags, data)
        if extra is None:
            synthesized = direction is _IN and not data  # the peer's half of a handshake
            extra = stream.extra + (" synthesized" if synthesized else "")
        self._packet(stream, ip_frame(src[0], dst[0], segment), 0, event, extra)

    def _packet(self, stream: _Stream, frame: bytes, missing: int, event: SocketEvent,
                extra: str) -> None:  # fmt: skip
        family = "ipv6" if ":" in stream.local[0] else "ipv4"
        interface = self._interfaces.get(family)
        if interface is None:
            interface = self._interfaces[family] = len(self._interfaces)
            self._blocks.append(self._interface(family))
        comment = (f"pid {event.pid} tid {event.tid} comm {event.comm} fd {event.fd} "
                   f"syscall {event.syscall.name.lower()}{extra}")
        ts = event.ts_ns + self.clock_offset_ns
        body = struct.pack("<IIIII", interface, ts >> 32, ts & 0xFFFFFFFF, len(frame),
                           len(frame) + missing)  # fmt: skip
        body += frame + b"\0" * (-len(frame) % 4)
        body += _options(_option(_OPT_COMMENT, comment.encode()))
        self._blocks.append(_block(_EPB, body))
        self.stats.packets += 1

    @staticmethod
    def _section_header() -> bytes:
        body = struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1)  # length unknown: -1
        return _block(_SHB, body + _options(_option(_SHB_USERAPPL,
                                                     f"libtrace {__version__}".encode())))

    @staticmethod
    def _interface(family: str) -> bytes:
        body = struct.pack("<HHI", _LINKTYPE_ETHERNET, 0, SNAPLEN)
        return _block(_IDB, body + _options(_option(_IF_NAME, f"libtrace-{family}".encode()),
                                            _option(_IF_TSRESOL, bytes([_NANOSECONDS]))))


def _isn(src: Endpoint, dst: Endpoint) -> int:
    """An initial sequence number per endpoint pair and direction, the same from
    either end of the connection (so both ends agree, whichever is written)."""
    return zlib.crc32(f"{src[0]}|{src[1]}|{dst[0]}|{dst[1]}".encode())

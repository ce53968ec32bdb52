"""Packets out of pcap and pcapng files, by dpkt, down to TCP/UDP over IPv4/IPv6.

dpkt reads the file formats (a pcapng's blocks are walked here, each packet
with its own interface's link type and clock, where dpkt's reader takes the
first interface's for all); this module picks the link-layer decoder, peels
IP, puts IPv4 fragments together, and is the one boundary where dpkt's and the OS's errors become
:class:`PcapError` with one sentence.  dpkt's readers stop silently on a
short final record, so the file object is wrapped to notice short reads:
a capture cut in the middle of a record is reported as truncated.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any

import dpkt  # type: ignore[import-untyped]

from ._errors import PcapError

#: Link types (www.tcpdump.org/linktypes.html) this reader decodes.
LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW_BSD, LINKTYPE_RAW_OPENBSD = 0, 1, 12, 14
LINKTYPE_RAW, LINKTYPE_LOOP, LINKTYPE_LINUX_SLL = 101, 108, 113
LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2 = 228, 229, 276
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10
_DPKT_ERRORS = (dpkt.dpkt.Error, struct.error, ValueError, IndexError, TypeError, AttributeError)


@dataclass(frozen=True, slots=True)
class Packet:
    """One TCP segment or UDP datagram."""

    ts_ns: int
    transport: str  #: "tcp" or "udp"
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes
    seq: int = 0
    flags: int = 0


class _TrackedFile:
    """A file wrapper that remembers whether a read came up short inside a record."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.name = getattr(raw, "name", "<file>")
        self.reads: list[tuple[int, int]] = []  # (asked, got) of the last two reads

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if n is None or n < 0:
            self.reads = [(-1, len(data))]
        else:
            self.reads = [*self.reads[-1:], (n, len(data))]
        return data

    def seek(self, *args: Any) -> int:
        return self._raw.seek(*args)

    def tell(self) -> int:
        return self._raw.tell()

    def fileno(self) -> int:
        return self._raw.fileno()

    @property
    def ended_cleanly(self) -> bool:
        """The reader stopped on an empty read that followed a complete one."""
        if not self.reads:
            return True
        if self.reads[-1][1] != 0:
            return False
        return len(self.reads) < 2 or self.reads[0][0] == self.reads[0][1]


def _link_decoder(linktype: int) -> Any:
    if linktype == LINKTYPE_ETHERNET:
        return lambda buf: dpkt.ethernet.Ethernet(buf).data
    if linktype == LINKTYPE_LINUX_SLL:
        return lambda buf: dpkt.sll.SLL(buf).data
    if linktype == LINKTYPE_LINUX_SLL2:
        return lambda buf: dpkt.sll2.SLL2(buf).data
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        return lambda buf: dpkt.loopback.Loopback(buf).data
    if linktype in (LINKTYPE_RAW, LINKTYPE_RAW_BSD, LINKTYPE_RAW_OPENBSD, LINKTYPE_IPV4,
                    LINKTYPE_IPV6):
        return lambda buf: (dpkt.ip6.IP6(buf) if buf[:1] and buf[0] >> 4 == 6
                            else dpkt.ip.IP(buf))
    return None


#: IPv4 datagrams being reassembled at once; beyond, the oldest is dropped.
MAX_FRAGMENTED = 1024


class Fragments:
    """IPv4 fragments put back together (a DNS answer over UDP larger than the
    path's MTU arrives so).  Pieces are kept per (source, destination, protocol,
    id) until every byte from 0 to the last fragment's end is there; a datagram
    never completed is dropped once :data:`MAX_FRAGMENTED` newer ones wait."""

    def __init__(self) -> None:
        self._pending: dict[tuple[bytes, bytes, int, int], dict[int, tuple[bytes, bool]]] = {}

    def add(self, ip: Any) -> Any | None:
        """The whole datagram once ``ip`` completes it (its transport decoded), else None."""
        key = (ip.src, ip.dst, ip.p, ip.id)
        pieces = self._pending.setdefault(key, {})
        pieces[ip.offset * 8] = (bytes(ip.data), bool(ip.mf))  # dpkt's offset: 8-byte units
        if len(self._pending) > MAX_FRAGMENTED:
            del self._pending[next(iter(self._pending))]
        data, at = bytearray(), 0
        while at in pieces:
            piece, more = pieces[at]
            data += piece
            if not more:
                del self._pending[key]
                whole = dpkt.ip.IP(src=ip.src, dst=ip.dst, p=ip.p, id=ip.id)
                whole.data = (dpkt.tcp.TCP(bytes(data)) if ip.p == dpkt.ip.IP_PROTO_TCP
                              else dpkt.udp.UDP(bytes(data)) if ip.p == dpkt.ip.IP_PROTO_UDP
                              else bytes(data))  # fmt: skip
                return whole
            if not piece:
                return None
            at += len(piece)
        return None


def _to_packet(ts_ns: int, ip: Any, fragments: Fragments | None = None) -> Packet | None:
    src: ipaddress.IPv4Address | ipaddress.IPv6Address
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address
    if isinstance(ip, dpkt.ip.IP):
        if ip.mf or ip.offset:
            if fragments is None:
                return None
            ip = fragments.add(ip)
            if ip is None:
                return None  # more fragments to come
        src, dst = ipaddress.IPv4Address(ip.src), ipaddress.IPv4Address(ip.dst)
    elif isinstance(ip, dpkt.ip6.IP6):
        src, dst = ipaddress.IPv6Address(ip.src), ipaddress.IPv6Address(ip.dst)
    else:
        return None
    l4 = ip.data
    if isinstance(l4, dpkt.tcp.TCP):
        return Packet(ts_ns, "tcp", str(src), l4.sport, str(dst), l4.dport, bytes(l4.data),
                      l4.seq, l4.flags)
    if isinstance(l4, dpkt.udp.UDP):
        return Packet(ts_ns, "udp", str(src), l4.sport, str(dst), l4.dport, bytes(l4.data))
    return None


PCAPNG_MAGIC = 0x0A0D0D0A
PCAPNG_BYTE_ORDER = 0x1A2B3C4D


@dataclass(frozen=True, slots=True)
class _Interface:
    """A pcapng interface: its link type and how its timestamps count."""

    decode: Any  #: the link-layer decoder, None if unsupported
    linktype: int
    units_per_second: int  #: if_tsresol: 10**6 by default
    offset_s: int = 0  #: if_tsoffset


def _interface(idb: Any, little: bool) -> _Interface:
    """From an Interface Description Block as dpkt parsed it (options included)."""
    units, offset = 10**6, 0
    for opt in idb.opts:
        if opt.code == dpkt.pcapng.PCAPNG_OPT_IF_TSRESOL and opt.data:
            value = opt.data[0]  # high bit: a power of two, else of ten
            units = 2 ** (value & 0x7F) if value & 0x80 else 10 ** (value & 0x7F)
        elif opt.code == dpkt.pcapng.PCAPNG_OPT_IF_TSOFFSET and len(opt.data) == 8:
            offset = struct.unpack("<q" if little else ">q", opt.data)[0]
    return _Interface(_link_decoder(idb.linktype), idb.linktype, units, offset)


def _pcapng_frames(tracked: _TrackedFile, little: bool) -> Iterator[tuple[int, _Interface, bytes]]:
    """(ts_ns, interface, frame) of every packet block, each decoded with the link
    type of its own interface: dpkt's reader takes the first interface's for all."""
    epb_class = dpkt.pcapng.EnhancedPacketBlockLE if little else dpkt.pcapng.EnhancedPacketBlock
    pb_class = dpkt.pcapng.PacketBlockLE if little else dpkt.pcapng.PacketBlock
    idb_class = (dpkt.pcapng.InterfaceDescriptionBlockLE if little
                 else dpkt.pcapng.InterfaceDescriptionBlock)  # fmt: skip
    head = struct.Struct("<II" if little else ">II")
    interfaces: list[_Interface] = []
    while True:
        start = tracked.read(8)
        if len(start) < 8:
            return
        kind, length = head.unpack(start)
        if length < 12:
            raise ValueError(f"pcapng block of {length} bytes")
        block = start + tracked.read(length - 8)
        if kind == dpkt.pcapng.PCAPNG_BT_SHB:
            interfaces = []  # a new section numbers its interfaces anew
        elif kind == dpkt.pcapng.PCAPNG_BT_IDB:
            interfaces.append(_interface(idb_class(block), little))
        elif kind in (dpkt.pcapng.PCAPNG_BT_EPB, dpkt.pcapng.PCAPNG_BT_PB):  # PB: obsolete
            epb = (epb_class if kind == dpkt.pcapng.PCAPNG_BT_EPB else pb_class)(block)
            interface = interfaces[epb.iface_id]
            raw = (epb.ts_high << 32) | epb.ts_low
            ts_ns = interface.offset_s * 10**9 + raw * 10**9 // interface.units_per_second
            yield ts_ns, interface, epb.pkt_data


def _pcap_frames(path: str, tracked: _TrackedFile) -> Iterator[tuple[int, Any, bytes]]:
    """(ts_ns, link decoder, frame) of each record of a classic pcap file."""
    try:
        reader = dpkt.pcap.Reader(tracked)
    except _DPKT_ERRORS:
        raise PcapError(f"{path} is not a pcap or pcapng file") from None
    decode = _link_decoder(reader.datalink())
    if decode is None:
        raise PcapError(f"{path} uses link type {reader.datalink()}, which is not supported "
                        "(Ethernet, Linux cooked, raw IP and loopback are)")
    micro = getattr(reader, "_divisor", 1e6) <= 1e6
    for ts, buf in reader:
        if isinstance(ts, Decimal):  # dpkt's nanosecond pcap: exact, keep it so
            ts_ns = int(ts * 1_000_000_000)
        else:
            ts_ns = round(ts * 1e6) * 1000 if micro else round(ts * 1e9)
        yield ts_ns, decode, buf


def _frames(path: str, tracked: _TrackedFile) -> Iterator[tuple[int, Any, bytes]]:
    """(ts_ns, link decoder, frame) of each packet of a pcap or pcapng file; a
    pcapng's interfaces each with their own link type (unsupported ones skipped,
    unless no interface is supported)."""
    head = tracked.read(12)
    tracked.seek(0)
    tracked.reads = []
    if len(head) < 12 or int.from_bytes(head[:4], "little") != PCAPNG_MAGIC:
        yield from _pcap_frames(path, tracked)
        return
    order = int.from_bytes(head[8:12], "little")
    if order not in (PCAPNG_BYTE_ORDER, int.from_bytes(PCAPNG_BYTE_ORDER.to_bytes(4, "big"),
                                                      "little")):  # fmt: skip
        raise PcapError(f"{path} is not a pcap or pcapng file")
    unsupported: set[int] = set()
    supported = False
    for ts_ns, interface, buf in _pcapng_frames(tracked, order == PCAPNG_BYTE_ORDER):
        if interface.decode is None:
            unsupported.add(interface.linktype)
            continue
        supported = True
        yield ts_ns, interface.decode, buf
    if unsupported and not supported:
        raise PcapError(f"{path} uses link type {min(unsupported)}, which is not supported "
                        "(Ethernet, Linux cooked, raw IP and loopback are)")


def read_packets(path: str) -> Iterator[Packet]:
    """Yield the TCP and UDP packets of a pcap or pcapng file, in file order.

    Raises:
        PcapError: the file cannot be opened, is not a capture, uses an
            unsupported link type, or is corrupt or truncated.
    """
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        raise PcapError(f"cannot open {path}: {exc.strerror or exc}") from None
    try:
        tracked = _TrackedFile(raw)
        fragments = Fragments()
        count = 0
        frames = _frames(path, tracked)
        while True:
            try:
                ts_ns, decode, buf = next(frames)
            except StopIteration:
                break
            except (*_DPKT_ERRORS, IndexError):
                raise PcapError(f"{path} is corrupt or truncated after packet {count}") from None
            count += 1
            try:
                packet = _to_packet(ts_ns, decode(buf), fragments)
            except _DPKT_ERRORS:
                continue  # a malformed or cut packet: skip it, as tcpdump does
            if packet is not None:
                yield packet
        if not tracked.ended_cleanly:
            raise PcapError(f"{path} is truncated: its last record (after packet {count}) "
                            "is incomplete")
    finally:
        raw.close()

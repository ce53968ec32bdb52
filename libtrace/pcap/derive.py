"""Derived fixtures: real captures transformed by named generators (never called real).

Some shapes a tracer meets cannot be recorded on demand from the servers here: a
capture that began in the middle of a connection, a segment lost inside a
request's header block, fragmented datagrams, nanosecond timestamps, a pcapng
whose interfaces have different link types.  Each function below makes one such
capture from a real one, changing only what its name says, frame by frame
(dpkt writes them); ``python -m libtrace.services.record`` runs each as the scenario named by
its file (``nginx-lost-header`` ...), after which tshark must agree with its records
as with any other fixture.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dpkt  # type: ignore[import-untyped]

from ..output import open_private

#: A frame of a capture: (seconds, raw link-layer bytes).
Frame = tuple[float, bytes]


def read_frames(path: Path) -> tuple[int, list[Frame]]:
    """A classic pcap's link type and frames."""
    with path.open("rb") as f:
        reader = dpkt.pcap.Reader(f)
        return reader.datalink(), [(float(ts), bytes(buf)) for ts, buf in reader]


def write_frames(path: Path, linktype: int, frames: list[Frame], *, nano: bool = False,
                 snaplen: int = 1500) -> Path:  # fmt: skip
    """``frames`` as a classic pcap (nanosecond timestamps with ``nano``), mode 0600;
    ``snaplen`` is the header's (dpkt's default, which the generated fixtures carry)."""
    with open_private(path) as f:
        writer = dpkt.pcap.Writer(f, snaplen=snaplen, linktype=linktype, nano=nano)
        for ts, buf in frames:
            writer.writepkt(buf, ts=ts)
    return path


def _tcp(buf: bytes) -> tuple[dpkt.ethernet.Ethernet, dpkt.ip.IP, dpkt.tcp.TCP] | None:
    eth = dpkt.ethernet.Ethernet(buf)
    ip = eth.data
    if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.tcp.TCP):
        return eth, ip, ip.data
    return None


def _connection(tcp: dpkt.tcp.TCP, ip: dpkt.ip.IP) -> frozenset[tuple[bytes, int]]:
    return frozenset({(ip.src, tcp.sport), (ip.dst, tcp.dport)})


def start_mid_connection(source: Path, target: Path, *, skip: int) -> Path:
    """Each TCP connection loses its handshake and its first ``skip`` packets that carry
    payload, as if the capture (or the tracer) had started there."""
    linktype, frames = read_frames(source)
    seen: dict[frozenset[tuple[bytes, int]], int] = {}
    kept = []
    for ts, buf in frames:
        parts = _tcp(buf)
        if parts is None:
            kept.append((ts, buf))
            continue
        _, ip, tcp = parts
        conn = _connection(tcp, ip)
        if tcp.data:
            seen[conn] = seen.get(conn, 0) + 1
        if seen.get(conn, 0) > skip:
            kept.append((ts, buf))
    return write_frames(target, linktype, kept)


def lose_inside(source: Path, target: Path, *, marker: bytes, keep: int) -> Path:
    """The first segment that holds ``marker`` is cut after ``keep`` bytes of its payload
    and the rest of it never arrives (a segment lost inside a message); the later
    segments keep their sequence numbers, so a reader sees the hole."""
    linktype, frames = read_frames(source)
    out, done = [], False
    for ts, buf in frames:
        parts = _tcp(buf)
        if not done and parts is not None and marker in parts[2].data:
            eth, ip, tcp = parts
            tcp.data = tcp.data[:keep]
            tcp.sum = ip.sum = 0  # dpkt computes both again when it packs them
            ip.len = len(ip)
            buf, done = bytes(eth), True
        out.append((ts, buf))
    if not done:
        raise ValueError(f"no segment of {source} holds {marker!r}")
    return write_frames(target, linktype, out)


def fragment_datagrams(source: Path, target: Path, *, size: int = 48) -> Path:
    """Every UDP datagram over IPv4 is sent as IPv4 fragments of ``size`` payload bytes
    (a multiple of eight), as a link with a small MTU would carry it."""
    linktype, frames = read_frames(source)
    out: list[Frame] = []
    for ts, buf in frames:
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
        if not (isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.udp.UDP)):
            out.append((ts, buf))
            continue
        payload = bytes(ip.data)
        for offset in range(0, len(payload), size):
            piece = payload[offset:offset + size]
            more = offset + size < len(payload)
            fragment = dpkt.ip.IP(src=ip.src, dst=ip.dst, p=ip.p, ttl=ip.ttl, id=ip.id,
                                  mf=int(more), offset=offset // 8,
                                  data=piece)  # fmt: skip
            fragment.len = len(fragment)
            out.append((ts, bytes(dpkt.ethernet.Ethernet(src=eth.src, dst=eth.dst,
                                                         type=eth.type, data=fragment))))
    return write_frames(target, linktype, out)


def nanosecond_times(source: Path, target: Path) -> Path:
    """The same frames in a nanosecond pcap (magic a1b23c4d), each frame's time moved by
    its index in nanoseconds so that the digits below the microsecond are used."""
    linktype, frames = read_frames(source)
    # dpkt's nanosecond writer takes the time as a float: the index is added in whole
    # nanoseconds of the integer time so that no rounding of the float decides them
    out = [(ts + index * 1e-9, buf) for index, (ts, buf) in enumerate(frames)]
    return write_frames(target, linktype, out, nano=True)


def two_link_types(source: Path, target: Path) -> Path:
    """A pcapng with two interfaces: Ethernet (the loopback's framing) and Linux cooked
    capture (SLL, what ``tcpdump -i any`` writes); the packets of every other
    connection are moved to the second one, their Ethernet header replaced by SLL's."""
    linktype, frames = read_frames(source)
    interfaces = [dpkt.pcapng.InterfaceDescriptionBlockLE(linktype=linktype, snaplen=65535),
                  dpkt.pcapng.InterfaceDescriptionBlockLE(linktype=dpkt.pcap.DLT_LINUX_SLL,
                                                          snaplen=65535)]  # fmt: skip
    order: dict[frozenset[tuple[bytes, int]], int] = {}
    with open_private(target) as f:
        writer = dpkt.pcapng.Writer(f, idb=interfaces)
        for ts, buf in frames:
            eth = dpkt.ethernet.Ethernet(buf)
            ip, iface = eth.data, 0
            if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.tcp.TCP | dpkt.udp.UDP):
                conn = _connection(ip.data, ip)
                iface = order.setdefault(conn, len(order)) % 2
            if iface:
                sll = dpkt.sll.SLL(type=0, hrd=772, hlen=6, hdr=b"\0" * 8, ethtype=eth.type,
                                   data=ip)  # fmt: skip
                buf = bytes(sll)
            micros = round(ts * 1_000_000)
            block = dpkt.pcapng.EnhancedPacketBlockLE(
                iface_id=iface, pkt_data=buf, ts_high=micros >> 32, ts_low=micros & 0xFFFFFFFF,
                caplen=len(buf), pkt_len=len(buf))  # fmt: skip
            writer.writepkt(block)
    return target


#: Derived fixture -> (its protocol directory, the real capture it comes from, the generator).
DERIVED: dict[str, tuple[str, str, Callable[[Path, Path], Path]]] = {
    "nghttpd-midstream.pcap": ("http2", "nghttpd.pcap",
                               lambda s, t: start_mid_connection(s, t, skip=2)),
    # the client's SETTINGS ACK first, then the calls
    "grpc-midstream-settings-ack.pcap": ("http2", "grpc.pcap",
                                         lambda s, t: start_mid_connection(s, t, skip=3)),
    # a call's HEADERS, WINDOW_UPDATE and DATA first
    "grpc-midstream.pcap": ("http2", "grpc.pcap", lambda s, t: start_mid_connection(s, t, skip=4)),
    "mosquitto-midstream.pcap": ("mqtt", "mosquitto.pcap",
                                 lambda s, t: start_mid_connection(s, t, skip=4)),
    "mosquitto-burst-midstream.pcap": ("mqtt", "mosquitto-variants.pcap",
                                       lambda s, t: start_mid_connection(s, t, skip=2)),
    "mysql8-query-attributes-midstream.pcap": (
        "mysql", "mysql8-query-attributes.pcap", lambda s, t: start_mid_connection(s, t, skip=3)),
    "mariadb-midstream.pcap": ("mysql", "mariadb.pcap",
                               lambda s, t: start_mid_connection(s, t, skip=4)),
    "nginx-lost-header.pcap": ("http1", "nginx.pcap",
                               lambda s, t: lose_inside(s, t, marker=b"GET /missing", keep=30)),
    "nginx-nanosecond.pcap": ("http1", "nginx.pcap", nanosecond_times),
    "dnsmasq-fragments.pcap": ("dns", "dnsmasq.pcap", fragment_datagrams),
    "redis-two-links.pcapng": ("redis", "redis.pcap", two_link_types),
}  # fmt: skip

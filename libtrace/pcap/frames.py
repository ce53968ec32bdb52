"""Synthetic frames: a TCP segment or UDP datagram in IPv4 or IPv6 in Ethernet.

The one place that builds link-layer frames from scratch, for the captures
written from a specification (:mod:`.synth`) and from a trace
(:mod:`.writer`).  Ethernet addresses are zero, as on loopback; dpkt computes
the IP and transport checksums when it packs the frame.
"""

from __future__ import annotations

import socket

import dpkt  # type: ignore[import-untyped]

#: TTL (IPv4) and hop limit (IPv6) of synthetic packets: Linux's default.
DEFAULT_TTL = 64
#: TCP window of synthetic segments: any fixed value; nothing here is flow-controlled.
WINDOW = 65535


def tcp_segment(sport: int, dport: int, seq: int, ack: int, flags: int,
                data: bytes = b"") -> dpkt.tcp.TCP:  # fmt: skip
    """A TCP segment (sequence and acknowledgement numbers taken modulo 2**32)."""
    return dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF,
                        flags=flags, win=WINDOW, data=data)  # fmt: skip


def udp_datagram(sport: int, dport: int, data: bytes, length: int | None = None) -> dpkt.udp.UDP:
    """A UDP datagram; ``length`` is its payload's size when the frame holds less
    (a capture cut short: the headers say what was sent)."""
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
    udp.ulen = dpkt.udp.UDP.__hdr_len__ + (len(data) if length is None else length)
    return udp


def ip_frame(src: str, dst: str, l4: dpkt.tcp.TCP | dpkt.udp.UDP, *, ttl: int = DEFAULT_TTL,
             extra: int = 0) -> bytes:  # fmt: skip
    """``l4`` in IPv4 or IPv6 (by the form of ``src``) in Ethernet; ``extra`` bytes
    of payload were sent beyond those in ``l4`` (the IP length counts them)."""
    protocol = dpkt.ip.IP_PROTO_TCP if isinstance(l4, dpkt.tcp.TCP) else dpkt.ip.IP_PROTO_UDP
    ip: dpkt.ip.IP | dpkt.ip6.IP6
    if ":" in src:
        ip = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, src),
                          dst=socket.inet_pton(socket.AF_INET6, dst), nxt=protocol, hlim=ttl,
                          data=l4)  # fmt: skip
        ip.plen = len(l4) + extra
        kind = dpkt.ethernet.ETH_TYPE_IP6
    else:
        ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=protocol,
                        ttl=ttl, data=l4)  # fmt: skip
        bytes(ip)  # dpkt sets the length and the checksums as it packs a header with none
        if extra:  # then the header again, with the length of what was sent
            ip.len += extra
            ip.sum = 0
            ip.sum = dpkt.in_cksum(ip.pack_hdr() + bytes(ip.opts))
        kind = dpkt.ethernet.ETH_TYPE_IP
    return bytes(dpkt.ethernet.Ethernet(src=b"\0" * 6, dst=b"\0" * 6, type=kind, data=ip))

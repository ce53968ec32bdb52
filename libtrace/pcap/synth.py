"""Fixtures built from a protocol's specification by named generators (never called real).

Some peers cannot be had on this machine: no MySQL 8 server is packaged for
Debian (MariaDB does not speak query attributes), no Dubbo provider at all.  The
functions here write the conversations such peers have, byte for byte as the
specification lays them out, into a capture with a complete TCP connection
(handshake, sequence and acknowledgement numbers, close) on loopback.  The
recorder runs each as a scenario named by its file; tshark must then agree with
its records as with any other fixture (Dubbo aside: it has no dissector).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import dpkt  # type: ignore[import-untyped]

from .derive import Frame, write_frames
from .frames import ip_frame, tcp_segment, udp_datagram

#: Loopback endpoints of the generated connections.
CLIENT = ("127.0.0.1", 40000)
#: Start of the generated clock (2026-11-30 00:00 UTC) and the step between packets.
EPOCH_S, STEP_S = 1796083200.0, 0.000050


def _timed(frames: list[bytes]) -> list[Frame]:
    """The frames on the generated clock, one :data:`STEP_S` apart."""
    return [(EPOCH_S + index * STEP_S, frame) for index, frame in enumerate(frames)]


def _frame(src: tuple[str, int], dst: tuple[str, int], flags: int, seq: int, ack: int,
           data: bytes = b"") -> bytes:  # fmt: skip
    return ip_frame(src[0], dst[0], tcp_segment(src[1], dst[1], seq, ack, flags, data))


def write_tcp_conversation(target: Path, server_port: int,
                           messages: list[tuple[bool, bytes]]) -> Path:  # fmt: skip
    """``messages`` (sent by the client?, bytes), each one segment, in a whole TCP
    connection between :data:`CLIENT` and loopback ``server_port``."""
    client, server = CLIENT, ("127.0.0.1", server_port)
    seq = {True: 1000, False: 5000}  # next sequence number of each side
    frames: list[bytes] = []

    def send(from_client: bool, flags: int, data: bytes = b"") -> None:
        src, dst = (client, server) if from_client else (server, client)
        frames.append(_frame(src, dst, flags, seq[from_client], seq[not from_client], data))
        seq[from_client] += len(data) + (1 if flags & (dpkt.tcp.TH_SYN | dpkt.tcp.TH_FIN) else 0)

    frames.append(_frame(client, server, dpkt.tcp.TH_SYN, seq[True] - 1, 0))
    frames.append(_frame(server, client, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, seq[False] - 1,
                         seq[True]))  # fmt: skip
    send(True, dpkt.tcp.TH_ACK)
    for from_client, data in messages:
        send(from_client, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, data)
    send(True, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK)
    send(False, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK)
    send(True, dpkt.tcp.TH_ACK)
    return write_frames(target, dpkt.pcap.DLT_EN10MB, _timed(frames))


def write_datagrams(target: Path, datagrams: list[tuple[tuple[str, int], tuple[str, int], bytes]]
                    ) -> Path:  # fmt: skip
    """Each (source, destination, payload) one UDP datagram over IPv4, in order."""
    frames = []
    for src, dst, payload in datagrams:
        frames.append(ip_frame(src[0], dst[0], udp_datagram(src[1], dst[1], payload), ttl=255))
    return write_frames(target, dpkt.pcap.DLT_EN10MB, _timed(frames))


# -- Multicast DNS (RFC 6762) and DNS UPDATE (RFC 2136) -----------------------------------------
def mdns_and_update(target: Path) -> Path:
    """mDNS on 5353 as RFC 6762 has it, written with dnspython: a multicast query of two
    questions (one asking for a unicast answer), the multicast answer with no question,
    a one-shot unicast query and its answer; then a DNS UPDATE (RFC 2136) and its
    REFUSED."""
    import dns.message
    import dns.name
    import dns.opcode
    import dns.rcode
    import dns.rdataclass
    import dns.rdatatype
    import dns.rrset
    import dns.update

    group, querier, responder = ("224.0.0.251", 5353), ("127.0.0.1", 5353), ("127.0.0.2", 5353)
    query = dns.message.Message(id=0)
    for name, kind in (("_http._tcp.local.", "PTR"), ("printer.local.", "A")):
        query.question.append(dns.rrset.RRset(dns.name.from_text(name), dns.rdataclass.IN,
                                              dns.rdatatype.from_text(kind)))
    # the top bit of the second question's class asks for a unicast response (QU)
    wire = bytearray(query.to_wire())
    wire[-2] |= 0x80
    answer = dns.message.Message(id=0)
    answer.flags = dns.flags.QR | dns.flags.AA
    answer.answer.append(dns.rrset.from_text("_http._tcp.local.", 120, "IN", "PTR",
                                             "printer._http._tcp.local."))
    answer.answer.append(dns.rrset.from_text("printer.local.", 120, "IN", "A", "127.0.0.2"))
    one_shot = dns.message.make_query("printer.local.", "A")
    one_shot.id = 0x2606
    one_shot_answer = dns.message.make_response(one_shot)
    one_shot_answer.answer.append(dns.rrset.from_text("printer.local.", 10, "IN", "A",
                                                      "127.0.0.2"))
    update = dns.update.UpdateMessage("example.test.", id=0x0B0B)
    update.add("host.example.test.", 300, "A", "10.1.2.9")
    refused = dns.message.make_response(update)
    refused.set_rcode(dns.rcode.REFUSED)
    unicast, server = ("127.0.0.1", 40053), ("127.0.0.3", 53)
    return write_datagrams(target, [
        (querier, group, bytes(wire)),
        (responder, group, answer.to_wire()),
        (unicast, responder, one_shot.to_wire()),
        (responder, unicast, one_shot_answer.to_wire()),
        (unicast, server, update.to_wire()),
        (server, unicast, refused.to_wire()),
    ])  # fmt: skip


# -- MySQL 8 (the client/server protocol, "Connection Phase" and "COM_QUERY") ------------
CLIENT_PROTOCOL_41, CLIENT_SECURE_CONNECTION, CLIENT_PLUGIN_AUTH = 0x200, 0x8000, 1 << 19
CLIENT_CONNECT_WITH_DB, CLIENT_QUERY_ATTRIBUTES = 0x8, 1 << 27
MYSQL8_CAPS = (CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH
               | CLIENT_CONNECT_WITH_DB | CLIENT_QUERY_ATTRIBUTES)  # fmt: skip
MYSQL_TYPE_VAR_STRING = 0xFD


def _mysql_packet(sequence: int, payload: bytes) -> bytes:
    return struct.pack("<I", len(payload))[:3] + bytes([sequence]) + payload


def _lenenc(n: int) -> bytes:
    return bytes([n]) if n < 251 else b"\xfc" + struct.pack("<H", n)


def _lenstr(text: bytes) -> bytes:
    return _lenenc(len(text)) + text


def _ok(sequence: int, affected: int = 0) -> bytes:
    return _mysql_packet(sequence, b"\x00" + _lenenc(affected) + b"\x00\x02\x00\x00\x00")


def _query_with_attributes(sql: bytes, attributes: list[tuple[int, bytes, bytes]]) -> bytes:
    """COM_QUERY when both sides have CLIENT_QUERY_ATTRIBUTES: parameter count, parameter
    set count (1), then, with parameters, the NULL bitmap, new-params-bound flag, each
    type and name, each value (binary protocol), and the SQL."""
    body = b"\x03" + _lenenc(len(attributes)) + _lenenc(1)
    if attributes:
        body += bytes((len(attributes) + 7) // 8) + b"\x01"
        body += b"".join(struct.pack("<H", kind) + _lenstr(name) for kind, name, _ in attributes)
        body += b"".join(value for _, _, value in attributes)
    return _mysql_packet(0, body + sql)


def mysql8_query_attributes(target: Path) -> Path:
    """A MySQL 8.0.36 server and a client (both CLIENT_QUERY_ATTRIBUTES): login, a query
    carrying two attributes, one carrying none, QUIT."""
    greeting = (b"\x0a" + b"8.0.36-generated\x00" + struct.pack("<I", 7) + b"abcdefgh\x00"
                + struct.pack("<H", MYSQL8_CAPS & 0xFFFF) + b"\xff" + struct.pack("<H", 2)
                + struct.pack("<H", MYSQL8_CAPS >> 16) + bytes([21]) + bytes(10)
                + b"ijklmnopqrst\x00" + b"caching_sha2_password\x00")  # fmt: skip
    login = (struct.pack("<I", MYSQL8_CAPS) + struct.pack("<I", 1 << 24) + b"\xff" + bytes(23)
             + b"app\x00" + _lenstr(bytes(32)) + b"shop\x00" + b"caching_sha2_password\x00")
    # string attributes only: tshark 4.0 misreads the value of any other type (it takes
    # the type's two bytes big-endian), and would then disagree on the SQL after it;
    # the unit tests cover the other types
    traced = [(MYSQL_TYPE_VAR_STRING, b"traceparent",
               _lenstr(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")),
              (MYSQL_TYPE_VAR_STRING, b"service", _lenstr(b"checkout"))]  # fmt: skip
    return write_tcp_conversation(target, 13306, [
        (False, _mysql_packet(0, greeting)),
        (True, _mysql_packet(1, login)),
        (False, _ok(2)),
        (True, _query_with_attributes(b"UPDATE items SET name = 'kiwi' WHERE id = 3", traced)),
        (False, _ok(1, affected=1)),
        (True, _query_with_attributes(b"DELETE FROM items WHERE id = 9", [])),
        (False, _ok(1)),
        (True, _mysql_packet(0, b"\x01")),
    ])  # fmt: skip


# -- Dubbo 2 with serializations other than hessian2 ---------------------------------------
def _dubbo_frame(flags: int, status: int, request_id: int, body: bytes) -> bytes:
    """A Dubbo 2 frame: magic, flags (request, two-way, event, serialization id), status,
    request id, body length, body."""
    return (b"\xda\xbb" + bytes([flags, status]) + request_id.to_bytes(8, "big")
            + len(body).to_bytes(4, "big") + body)  # fmt: skip


def _kryo_ascii(text: str) -> bytes:
    """Kryo's Output.writeString for an ASCII string of two characters or more: its bytes,
    the last one with the high bit set (written here from the specification, not with
    libtrace's reader's inverse, so that the fixture checks that reader)."""
    data = bytearray(text.encode("ascii"))
    data[-1] |= 0x80
    return bytes(data)


def _json_lines(*values: object) -> bytes:
    """FastJson's and Gson's ObjectOutput: each value one line of JSON."""
    return b"".join(json.dumps(v).encode() + b"\n" for v in values)


def dubbo_serializations(target: Path) -> Path:
    """A Dubbo 2 consumer and provider speaking fastjson (6), gson (16), kryo (8), fst (9)
    and protobuf (22): the prefix strings in each one's own form where the JSON and Kryo
    specifications give it, opaque bytes for fst and protobuf (whose writers here are
    not specified byte for byte), OK, SERVICE_NOT_FOUND and BAD_REQUEST answers."""
    request, two_way, ok = 0x80, 0x40, 20
    prefix = ("2.0.2", "org.demo.CatalogService", "1.2.0")
    kryo_prefix = b"".join(_kryo_ascii(s) for s in prefix)
    conversation = [
        (True, _dubbo_frame(request | two_way | 6, 0, 1,
                            _json_lines(*prefix, "find", "Ljava/lang/String;", "tea", {}))),
        (False, _dubbo_frame(6, ok, 1, _json_lines(1, {"name": "tea", "price": 3}))),
        (True, _dubbo_frame(request | two_way | 16, 0, 2, _json_lines(*prefix, "list", "", {}))),
        (False, _dubbo_frame(16, ok, 2, _json_lines(2))),
        (True, _dubbo_frame(request | two_way | 8, 0, 3, kryo_prefix + _kryo_ascii("find")
                            + _kryo_ascii("Ljava/lang/String;") + b"\x03\x01tea")),
        (False, _dubbo_frame(8, ok, 3, b"\x01" + _kryo_ascii("tea: 3"))),
        (True, _dubbo_frame(request | two_way | 8, 0, 4, b"".join(_kryo_ascii(s) for s in (
            "2.0.2", "org.demo.Missing", "1.0.0", "find")) + b"\x00")),
        (False, _dubbo_frame(8, 60, 4, _kryo_ascii("Not found exported service"))),
        (True, _dubbo_frame(request | two_way | 9, 0, 5, b"\x00\x05fst-opaque-request")),
        (False, _dubbo_frame(9, ok, 5, b"\x01\x00fst-opaque-value")),
        (True, _dubbo_frame(request | two_way | 22, 0, 6, b"\x0a\x05proto-opaque")),
        (False, _dubbo_frame(22, 40, 6, b"\x0a\x0bbad request")),
    ]
    return write_tcp_conversation(target, 20880, conversation)


CLIENT_ZSTD_COMPRESSION_ALGORITHM = 1 << 26


def _column(name: bytes) -> bytes:
    """A column definition (Protocol::ColumnDefinition41) of a VARCHAR column."""
    return (b"".join(_lenstr(v) for v in (b"def", b"shop", b"items", b"items", name, name))
            + b"\x0c" + struct.pack("<HIBHB", 45, 80, MYSQL_TYPE_VAR_STRING, 0, 0) + b"\0\0")


def _eof(sequence: int) -> bytes:
    return _mysql_packet(sequence, b"\xfe\x00\x00\x02\x00")


def _zstd_packet(sequence: int, packets: bytes) -> bytes:
    """One packet of the compressed protocol whose body is one zstd frame."""
    import zstandard

    body = zstandard.ZstdCompressor(level=3).compress(packets)
    return (len(body).to_bytes(3, "little") + bytes([sequence])
            + len(packets).to_bytes(3, "little") + body)  # fmt: skip


def mysql8_zstd(target: Path) -> Path:
    """A MySQL 8.0.36 server and client that agree on zstd compression
    (CLIENT_ZSTD_COMPRESSION_ALGORITHM, level 3 in the login): after the login's OK each
    direction is compressed packets, each one zstd frame: a SELECT and its result set
    (two rows), then QUIT."""
    caps = MYSQL8_CAPS & ~CLIENT_QUERY_ATTRIBUTES | CLIENT_ZSTD_COMPRESSION_ALGORITHM
    greeting = (b"\x0a" + b"8.0.36-generated\x00" + struct.pack("<I", 8) + b"abcdefgh\x00"
                + struct.pack("<H", caps & 0xFFFF) + b"\xff" + struct.pack("<H", 2)
                + struct.pack("<H", caps >> 16) + bytes([21]) + bytes(10)
                + b"ijklmnopqrst\x00" + b"caching_sha2_password\x00")  # fmt: skip
    login = (struct.pack("<I", caps) + struct.pack("<I", 1 << 24) + b"\xff" + bytes(23)
             + b"app\x00" + _lenstr(bytes(32)) + b"shop\x00" + b"caching_sha2_password\x00"
             + b"\x03")  # the zstd compression level  # fmt: skip
    select = _mysql_packet(0, b"\x03SELECT name FROM items WHERE name LIKE 'p%' ORDER BY id")
    rows = [b"pear", b"plum"]
    answer = (_mysql_packet(1, b"\x01") + _mysql_packet(2, _column(b"name")) + _eof(3)
              + b"".join(_mysql_packet(4 + i, _lenstr(row)) for i, row in enumerate(rows))
              + _eof(4 + len(rows)))  # fmt: skip
    quit_ = _mysql_packet(0, b"\x01")
    return write_tcp_conversation(target, 13306, [
        (False, _mysql_packet(0, greeting)),
        (True, _mysql_packet(1, login)),
        (False, _ok(2)),
        (True, _zstd_packet(0, select)),
        (False, _zstd_packet(0, answer)),
        (True, len(quit_).to_bytes(3, "little") + b"\x01" + bytes(3) + quit_),  # as it is
    ])  # fmt: skip


#: Generated fixture -> (its protocol directory, the generator).
GENERATED: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "mysql8-query-attributes.pcap": ("mysql", mysql8_query_attributes),
    "mysql8-zstd.pcap": ("mysql", mysql8_zstd),
    "dubbo-serializations.pcap": ("dubbo", dubbo_serializations),
    "mdns-and-update.pcap": ("dns", mdns_and_update),
}

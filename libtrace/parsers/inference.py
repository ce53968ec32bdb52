"""Protocol inference: from the first bytes of one direction, which protocol is it?

Theory of operation: each protocol has one signature function that looks at
the first bytes of a direction and returns a confidence in [0, 1] and which
side spoke them (request or response), or ``None``.  :func:`infer` runs them
all and keeps the best.  Signatures check structure, not just a magic
number: a Kafka request must have a size that fits, a known API key, a sane
version and client id; a MySQL greeting must carry protocol 10 and a
NUL-terminated version.  A port only ever *raises* the confidence of a
protocol that matched on its bytes (by :data:`PORT_BONUS`); it never makes a
protocol out of nothing, so unknown traffic stays unknown.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from ._dns import DNS_HEADER_BYTES, decode_dns
from ._errors import MalformedError, TruncatedError
from ._events import Direction
from ._http1 import METHODS
from ._http2 import PREFACE, plausible_frame_header
from ._kafka import kafka_request_reads
from ._limits import MAX_INFERENCE_BYTES
from ._mqtt import CLIENT_SENDS, FLAGS_0010, SERVER_SENDS, read_fixed_header
from ._mysql import looks_like_login, sql_after_attributes

#: Every protocol libtrace knows, parsed or not yet.
PROTOCOLS = ("http1", "http2", "dubbo", "mysql", "redis", "kafka", "mqtt", "dns")
#: Well-known ports: a hint that raises confidence, never a rule.
PORT_HINTS: dict[str, frozenset[int]] = {
    "http1": frozenset({80, 8000, 8080, 8081, 8888}),
    "http2": frozenset({80, 8080, 50051, 9090}),
    "dubbo": frozenset({20880}),
    "mysql": frozenset({3306, 3307}),
    "redis": frozenset({6379, 6380}),
    "kafka": frozenset({9092, 9093}),
    "mqtt": frozenset({1883, 8883}),
    "dns": frozenset({53, 5353}),
}
#: What a matching port adds to a byte-level match.
PORT_BONUS = 0.1
#: Below this, :func:`infer` reports no protocol.
MIN_CONFIDENCE = 0.3
#: Highest Kafka API key known here (ApiKey enum of Kafka 3.x/4.x is < 90).
KAFKA_MAX_API_KEY = 90
#: Kafka API versions in use stay well below this.
KAFKA_MAX_API_VERSION = 30
#: Kafka requests larger than this are implausible as a first message.
KAFKA_MAX_REQUEST_BYTES = 100 * 1024 * 1024

#: More questions than this in one DNS message is implausible (one is usual).
DNS_MAX_QUESTIONS = 16

#: A first segment shorter than this must contain the whole Kafka request.
KAFKA_MIN_PARTIAL_BYTES = 512

_HTTP1_REQUEST = re.compile(rb"(?:" + "|".join(METHODS).encode() + rb") \S+ HTTP/1\.[01]\r?\n")
_HTTP1_REQUEST_PREFIX = re.compile(rb"(?:" + "|".join(METHODS).encode() + rb") /")
_HTTP1_RESPONSE = re.compile(rb"HTTP/1\.[01] [1-5]\d\d[ \r\n]")
_RESP_COMMAND = re.compile(rb"\*[1-9]\d{0,6}\r\n\$\d{1,9}\r\n[A-Za-z]")
_RESP_REPLY = re.compile(rb"(?:\+[\x20-\x7e]*|-[A-Z]+ [\x20-\x7e]*|:-?\d+|\$-?\d+|\*-?\d+"
                         rb"|%\d+|_|#[tf]|,[\d.e+-]+)\r\n")
_INLINE = re.compile(rb"(?i:PING|QUIT|INFO|HELLO|AUTH)(?: [\x20-\x7e]*)?\r?\n")
_PRINTABLE = re.compile(rb"[\x09\x0a\x0d\x20-\x7e]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class Inference:
    """The verdict on one direction's first bytes."""

    protocol: str | None
    confidence: float
    #: which side sent the bytes, when the signature can tell
    direction: Direction | None = None


#: (confidence, the side that sent the bytes, None when they cannot tell), or no match.
Match = tuple[float, Direction | None] | None
UNKNOWN = Inference(protocol=None, confidence=0.0)


def _http1(data: bytes, udp: bool) -> Match:
    if udp:
        return None
    if _HTTP1_REQUEST.match(data):
        return 0.95, Direction.REQUEST
    if _HTTP1_RESPONSE.match(data):
        return 0.95, Direction.RESPONSE
    if _HTTP1_REQUEST_PREFIX.match(data):
        return 0.6, Direction.REQUEST
    return None


#: Stream ids beyond this do not pass for HTTP/2 mid-connection: 8 million
#: requests on one connection before the capture began, or, far likelier, four
#: bytes of another protocol (a cut Kafka answer's int32 fields read as frames).
MAX_INFERRED_STREAM_ID = 1 << 24


def _http2(data: bytes, udp: bool) -> Match:
    if udp:
        return None
    if data.startswith(PREFACE) or (len(data) >= 8 and PREFACE.startswith(data[:24])):
        return 0.99, Direction.REQUEST
    # Mid-connection (or a server's first SETTINGS): whatever frames come first,
    # each header plausible, back to back.
    frames: list[tuple[int, int, int, bytes]] = []  # type, flags, stream id, payload
    pos = 0
    while (pos + 9 <= len(data) and plausible_frame_header(data[pos:pos + 9])
           and int.from_bytes(data[pos + 5:pos + 9], "big") < MAX_INFERRED_STREAM_ID):
        length = int.from_bytes(data[pos:pos + 3], "big")
        ftype, flags = data[pos + 3], data[pos + 4]
        if ftype in (0, 1) and not length and not (ftype == 0 and flags & 1):
            break  # an empty HEADERS, or an empty DATA that ends nothing: zeros, not a frame
        frames.append((data[pos + 3], data[pos + 4], int.from_bytes(data[pos + 5:pos + 9], "big"),
                       data[pos + 9:pos + 9 + length]))  # fmt: skip
        pos += 9 + length
    if not frames or (pos < len(data) and len(data) - pos >= 9):
        return None  # not frames back to back (the last may be cut short)
    if pos > len(data) and len(frames) == 1:
        # One frame, cut short: nine bytes of header alone are too little to tell
        # from noise (the middle of another protocol's message can pass).
        return 0.25, None
    directions = {d for frame in frames if (d := _http2_sender(*frame)) is not None}
    direction = directions.pop() if len(directions) == 1 else None
    ftype, flags, _, _ = frames[0]
    whole = len(frames) - (pos > len(data))  # the last may be cut short
    told = any(frame[0] == 1 and _http2_sender(*frame) for frame in frames)
    if any(frame[0] in (0, 1) for frame in frames) and (whole >= 2 or told):
        # DATA or HEADERS, and either two whole frames back to back or a header
        # block that opens with a pseudo-header: one small frame alone is a
        # dozen bytes that the inside of another protocol's message can mimic.
        return min(0.85, 0.55 + 0.05 * len(frames)), direction
    if ftype == 4 and not flags & 1:
        # A first SETTINGS that is no ACK: a server's opening (a client's comes
        # after the preface); a SETTINGS ACK can come from either side.
        return 0.6, direction or Direction.RESPONSE
    # PING, SETTINGS ACK, WINDOW_UPDATE...: 9-17 bytes; only a port makes them enough.
    return 0.25, direction


#: HPACK static table indexes (RFC 7541, appendix A) of request pseudo-headers
#: (:authority, :method, :path, :scheme) and of :status.
_HPACK_REQUEST = range(1, 8)
_HPACK_STATUS = range(8, 15)


def _http2_sender(ftype: int, flags: int, stream_id: int, payload: bytes) -> Direction | None:
    """Which side sent a frame, where the frame can tell: a HEADERS block begins
    with a pseudo-header (a request's :method/:path/..., a response's :status),
    which HPACK encodes as an index into its static table, known without the
    connection's dynamic table; PUSH_PROMISE and even streams are the server's."""
    if ftype == 5 or (ftype in (0, 1) and stream_id and stream_id % 2 == 0):
        return Direction.RESPONSE
    if ftype != 1:
        return None
    pos = (1 if flags & 0x8 else 0) + (5 if flags & 0x20 else 0)  # PADDED, PRIORITY
    if pos >= len(payload):
        return None
    first = payload[pos]
    if first & 0x80:  # indexed header field
        index = first & 0x7F
    elif first & 0x40:  # literal with incremental indexing, indexed name
        index = first & 0x3F
    elif first & 0x20:  # dynamic table size update: look no further
        return None
    else:  # literal without indexing / never indexed, indexed name
        index = first & 0x0F
    if index in _HPACK_REQUEST:
        return Direction.REQUEST
    if index in _HPACK_STATUS:
        return Direction.RESPONSE
    return None


def _redis(data: bytes, udp: bool) -> Match:
    if udp:
        return None
    if _RESP_COMMAND.match(data):
        return 0.9, Direction.REQUEST
    if _INLINE.fullmatch(data):
        return 0.5, Direction.REQUEST
    if _RESP_REPLY.match(data):
        return 0.4, Direction.RESPONSE
    return None


def _dns(data: bytes, udp: bool) -> Match:
    wire = data
    if not udp:
        if len(data) < 2 + DNS_HEADER_BYTES or int.from_bytes(data[:2], "big") != len(data) - 2:
            return None
        wire = data[2:]
    if len(wire) < DNS_HEADER_BYTES:
        return None
    qdcount, ancount, nscount, arcount = struct.unpack_from(">HHHH", wire, 4)
    if qdcount > DNS_MAX_QUESTIONS or not (qdcount or ancount or nscount or arcount):
        return None
    try:
        message = decode_dns(wire, 0, strict=True)
    except (MalformedError, TruncatedError):
        return None
    # One question is the common query; several, or none (an mDNS announcement,
    # a NOTIFY or UPDATE without one) still parse strictly, but say less.
    confidence = 0.85 if qdcount == 1 else 0.7 if qdcount else 0.6
    return confidence - (0 if udp else 0.05), message.direction


def _mysql(data: bytes, udp: bool) -> Match:
    if udp or len(data) < 5:
        return None
    length = int.from_bytes(data[:3], "little")
    seq, first = data[3], data[4]
    if length == 0 or length > len(data) - 4 + 65536:
        return None
    if seq == 0 and first == 10:  # server greeting, protocol version 10
        end = data.find(b"\x00", 5, 5 + 64)
        if end > 5 and _PRINTABLE.fullmatch(data[5:end]) and length >= end - 4 + 4:
            return 0.9, Direction.RESPONSE
    whole = length == len(data) - 4
    # COM_QUERY / COM_STMT_PREPARE with printable SQL, COM_INIT_DB with a name
    if (seq == 0 and first in (0x02, 0x03, 0x16) and whole and length > 1
            and _PRINTABLE.fullmatch(data[5:])):
        return 0.7, Direction.REQUEST
    # a MySQL 8 COM_QUERY whose query attributes come before the SQL
    if seq == 0 and first == 0x03 and whole and sql_after_attributes(data[4:]) is not None:
        return 0.7, Direction.REQUEST
    # Mid-connection, what else a client or a server sends first:
    if seq == 1 and whole and looks_like_login(data[4:]):
        return 0.8, Direction.REQUEST
    if seq >= 1 and whole and first == 0xFF and length >= 9 and data[7:8] == b"#":
        return 0.6, Direction.RESPONSE  # ERR: code, '#', a five-character SQL state
    if seq == 0 and whole and first == 0x17 and length >= 10 and data[10:14] == b"\1\0\0\0":
        return 0.5, Direction.REQUEST  # COM_STMT_EXECUTE: id, flags, iteration count 1
    if seq == 0 and whole and ((first in (0x01, 0x0E) and length == 1)
                               or (first in (0x19, 0x1A) and length == 5)):
        return 0.25, Direction.REQUEST  # QUIT, PING, STMT_CLOSE/RESET: the port decides
    if seq >= 1 and whole and first == 0x00 and 7 <= length <= 64:
        return 0.25, Direction.RESPONSE  # OK: the port decides
    return None


def _kafka(data: bytes, udp: bool) -> Match:
    if udp or len(data) < 14:
        return None
    size, api_key, api_version, _correlation, client_len = struct.unpack_from(">ihhih", data)
    if not 10 <= size <= KAFKA_MAX_REQUEST_BYTES:
        return None
    if size > len(data) - 4 and len(data) < KAFKA_MIN_PARTIAL_BYTES:
        return None  # a short first segment must hold the whole request
    if not 0 <= api_key <= KAFKA_MAX_API_KEY or not 0 <= api_version <= KAFKA_MAX_API_VERSION:
        return None
    confidence = None
    if client_len == -1:
        confidence = 0.6
    elif 0 <= client_len <= 255 and len(data) >= 14 + client_len:
        client_id = data[14:14 + client_len]
        if client_len and _PRINTABLE.fullmatch(client_id):
            confidence = 0.8 if size == len(data) - 4 else 0.7
        elif not client_len:
            confidence = 0.5
    if confidence is None:
        return None
    if size <= len(data) - 4 and not kafka_request_reads(data[4:4 + size]):
        # Whole (perhaps with more behind it), yet its body does not read as that
        # API's request: a response's correlation id can pass for an API key and
        # version (the sides swap).
        return 0.25, Direction.REQUEST
    return confidence, Direction.REQUEST


def _mqtt_packets(data: bytes) -> list[tuple[int, int, bytes]] | None:
    """The segment as MQTT packets: (type, flags, body) of each whole one; None
    unless it is such packets back to back (the last may be cut short)."""
    packets: list[tuple[int, int, bytes]] = []
    pos = 0
    while pos < len(data):
        try:
            header = read_fixed_header(data, pos)
        except MalformedError:
            return None
        if header is None or pos + header.header_bytes + header.length > len(data):
            return packets or None  # the last packet, cut short
        kind, flags = header.ptype, header.flags
        if flags != (2 if kind in FLAGS_0010 else flags if kind == 3 else 0):
            return None
        body = pos + header.header_bytes
        packets.append((kind, flags, data[body:body + header.length]))
        pos = body + header.length
    return packets


#: PUBLISH, SUBSCRIBE, UNSUBSCRIBE: packets that carry a topic, real evidence.
_MQTT_WITH_TOPIC = frozenset({3, 8, 10})


def _topic_filter_at(body: bytes, start: int) -> bool:
    """Whether a non-empty printable topic filter (length-prefixed) starts at ``start``."""
    length = int.from_bytes(body[start:start + 2], "big")
    topic = body[start + 2:start + 2 + length]
    return 0 < length == len(topic) and bool(_PRINTABLE.fullmatch(topic))


def _mqtt_plausible(kind: int, flags: int, body: bytes) -> bool:
    """Whether one whole packet (other than CONNECT) holds what its type needs."""
    if kind == 3:  # PUBLISH: a printable topic without wildcards, then the id if QoS > 0
        qos = (flags >> 1) & 3
        if qos == 3 or len(body) < 2:
            return False
        topic_len = int.from_bytes(body[:2], "big")
        topic = body[2:2 + topic_len]
        return (topic_len > 0 and len(body) >= 2 + topic_len + (2 if qos else 0)
                and bool(_PRINTABLE.fullmatch(topic)) and not set(topic) & {0x23, 0x2B})
    if kind in (12, 13, 14):  # PINGREQ, PINGRESP, DISCONNECT (3.1.1: no body)
        return not body
    if kind in (4, 5, 6, 7):  # PUBACK, PUBREC, PUBREL, PUBCOMP: a packet id (v5: + reason)
        return len(body) >= 2 and body[:2] != b"\0\0"
    if kind in (8, 10):  # SUBSCRIBE, UNSUBSCRIBE: a packet id, then a topic filter
        if len(body) < 5 or body[:2] == b"\0\0":
            return False
        # MQTT 5 puts its properties between the two (a one-byte length where short).
        starts = (2, 3 + body[2]) if body[2] < 0x80 else (2,)
        return any(_topic_filter_at(body, start) for start in starts)
    if kind in (9, 11):  # SUBACK, UNSUBACK: a packet id and return codes
        return len(body) >= 2 + (kind == 9) and body[:2] != b"\0\0"
    return False  # CONNACK, AUTH, an MQTT 5 DISCONNECT: too short to tell from noise alone


def _mqtt(data: bytes, udp: bool) -> Match:
    if udp or len(data) < 2:
        return None
    match = _mqtt_connect_or_connack(data)
    if match is not None:
        return match
    # Mid-session: whatever packets come first, whole and plausible.
    packets = _mqtt_packets(data)
    if not packets or not all(_mqtt_plausible(*packet) for packet in packets):
        return None
    kinds = {kind for kind, _, _ in packets}
    direction = None  # PUBLISH and its acknowledgements go both ways
    if kinds <= CLIENT_SENDS and not kinds <= SERVER_SENDS:
        direction = Direction.REQUEST
    elif kinds <= SERVER_SENDS and not kinds <= CLIENT_SENDS:
        direction = Direction.RESPONSE
    if not kinds & _MQTT_WITH_TOPIC:
        # Acknowledgements and pings are 2-5 bytes that noise can mimic: only
        # the port (PORT_BONUS) lifts them over MIN_CONFIDENCE.
        return 0.25, direction
    return min(0.8, 0.55 + 0.05 * len(packets)), direction


def _mqtt_connect_or_connack(data: bytes) -> Match:
    if data[0] == 0x10:  # CONNECT
        try:
            header = read_fixed_header(data)
        except MalformedError:  # a remaining length of more than four bytes
            return None
        pos = header.header_bytes if header is not None else len(data)
        name = data[pos:pos + 8]
        if name.startswith(b"\x00\x04MQTT") or name.startswith(b"\x00\x06MQIsdp"):
            return 0.95, Direction.REQUEST
    if data[0] == 0x20 and len(data) >= 4 and data[1] in (2, 3) and data[2] in (0, 1):
        return 0.35, Direction.RESPONSE  # CONNACK
    return None


def _dubbo(data: bytes, udp: bool) -> Match:
    if udp or len(data) < 16 or data[:2] != b"\xda\xbb":
        return None
    flags = data[2]
    body = int.from_bytes(data[12:16], "big")
    if body > KAFKA_MAX_REQUEST_BYTES:
        return None
    return 0.95, Direction.REQUEST if flags & 0x80 else Direction.RESPONSE


#: One signature per protocol.
SIGNATURES: dict[str, Callable[[bytes, bool], Match]] = {
    "http2": _http2, "http1": _http1, "dubbo": _dubbo, "mysql": _mysql,
    "redis": _redis, "kafka": _kafka, "mqtt": _mqtt, "dns": _dns,
}


def infer(data: bytes, *, transport: str = "tcp", ports: tuple[int, ...] = ()) -> Inference:
    """Guess the protocol of a direction from its first bytes.

    Args:
        data: the first bytes seen in one direction (a UDP datagram for UDP).
        transport: ``"tcp"`` or ``"udp"``.
        ports: the connection's ports; a known port raises confidence a little.

    Returns:
        The best match, or ``protocol=None`` when nothing reaches
        :data:`MIN_CONFIDENCE`.
    """
    data = bytes(data[:MAX_INFERENCE_BYTES])
    udp = transport == "udp"
    best = UNKNOWN
    for name, signature in SIGNATURES.items():
        match = signature(data, udp)
        if match is None:
            continue
        confidence, direction = match
        if PORT_HINTS[name].intersection(ports):
            confidence = min(1.0, confidence + PORT_BONUS)
        if confidence > best.confidence:
            best = Inference(protocol=name, confidence=round(confidence, 3), direction=direction)
    return best if best.confidence >= MIN_CONFIDENCE else UNKNOWN

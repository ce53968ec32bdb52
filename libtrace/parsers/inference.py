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
from ._limits import MAX_INFERENCE_BYTES
from ._mqtt import CLIENT_SENDS, FLAGS_0010, SERVER_SENDS, read_fixed_header

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


def _http2(data: bytes, udp: bool) -> Match:
    if udp:
        return None
    if data.startswith(PREFACE) or (len(data) >= 8 and PREFACE.startswith(data[:24])):
        return 0.99, Direction.REQUEST
    # A server starts with SETTINGS on stream 0.
    if len(data) >= 9 and data[3] == 4 and plausible_frame_header(data[:9]):
        return 0.6, Direction.RESPONSE
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
    # COM_QUERY / COM_STMT_PREPARE with printable SQL
    if (seq == 0 and first in (0x03, 0x16) and length == len(data) - 4 and length > 1
            and _PRINTABLE.fullmatch(data[5:])):
        return 0.7, Direction.REQUEST
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
    if client_len == -1:
        return 0.6, Direction.REQUEST
    if 0 <= client_len <= 255 and len(data) >= 14 + client_len:
        client_id = data[14:14 + client_len]
        if client_len and _PRINTABLE.fullmatch(client_id):
            return (0.8 if size == len(data) - 4 else 0.7), Direction.REQUEST
        if not client_len:
            return 0.5, Direction.REQUEST
    return None


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
    if kind in (12, 13):  # PINGREQ, PINGRESP
        return not body
    if kind in (4, 5, 6, 7):  # PUBACK, PUBREC, PUBREL, PUBCOMP: a packet id (v5: + reason)
        return len(body) >= 2 and body[:2] != b"\0\0"
    if kind in (8, 10):  # SUBSCRIBE, UNSUBSCRIBE: a packet id, then a topic filter
        if len(body) < 5 or body[:2] == b"\0\0":
            return False
        topic_len = int.from_bytes(body[2:4], "big")
        return 0 < topic_len <= len(body) - 4 and bool(_PRINTABLE.fullmatch(body[4:4 + topic_len]))
    if kind in (9, 11):  # SUBACK, UNSUBACK: a packet id and return codes
        return len(body) >= 2 + (kind == 9) and body[:2] != b"\0\0"
    return False  # CONNACK, DISCONNECT, AUTH: too short to tell from noise alone


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

"""MQTT 3.1, 3.1.1 and 5.0 over TCP: every control packet, both directions.

Theory of operation: a packet is a fixed header (type and flags in one byte,
then a Variable Byte Integer "remaining length") and a body of that length,
read through a :class:`Cursor` restricted to the body.  The protocol level of
the CONNECT (3, 4 or 5) decides, for the whole connection, whether bodies
carry v5 properties; without a CONNECT (a capture that starts mid-connection)
3.1.1 is assumed.  A PUBLISH body (the application payload) is not buffered:
once its variable header (topic, packet id, properties) is in the buffer the
packet is emitted and the rest is skipped, so a payload may be larger than
the buffer bound.  v5 topic aliases are remembered per sender, bounded by
:data:`MAX_TOPIC_ALIASES`.

Who initiates decides request or response, not the direction: a server may
PUBLISH to a subscribed client, which then answers with PUBACK.  Pairing keys
say who started the exchange and which step it is, so the client's and the
server's packet identifiers never collide::

    PUBLISH qos 1/2  <->  PUBACK / PUBREC      key (sender, "publish", id)
    PUBREL           <->  PUBCOMP              key (sender, "release", id)
    SUBSCRIBE        <->  SUBACK               key ("subscribe", id)
    UNSUBSCRIBE      <->  UNSUBACK             key ("unsubscribe", id)
    CONNECT          <->  CONNACK              key ("connect",)
    PINGREQ          <->  PINGRESP             key ("ping",)

QoS 0 PUBLISH, DISCONNECT and AUTH expect no response (AUTH exchanges are
emitted one by one; the CONNACK that ends them pairs with the CONNECT).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import NamedTuple

from mypy_extensions import mypyc_attr

from ..frozen import hand_init
from ._base import Side, StreamParser, Transport
from ._cursor import Cursor
from ._enums import open_enum
from ._errors import LimitExceededError, MalformedError, TruncatedError
from ._events import REQUEST, RESPONSE, Direction, Message, Status, clip
from ._limits import MAX_ARGS_KEPT, MAX_MESSAGE_BYTES
from ._spec import PRINTABLE, Match, ProtocolSpec

#: Bytes of a PUBLISH that are buffered to read its variable header (topic,
#: packet id, v5 properties); the payload beyond is skipped.  A topic is at
#: most 64 KiB and properties rarely exceed a few KiB.
MAX_PUBLISH_HEAD_BYTES = 128 * 1024
#: v5 topic aliases remembered per sender (the spec allows 65535; brokers
#: default to 10-1000).
MAX_TOPIC_ALIASES = 1024
#: A fixed header is 1 type byte plus at most 4 length bytes.
MAX_FIXED_HEADER_BYTES = 5
#: The largest remaining length a Variable Byte Integer can encode.
MAX_REMAINING_LENGTH = 268_435_455
#: While hunting for a packet start, a candidate other than PUBLISH or CONNECT
#: longer than this is not believed (acknowledgements are 2-4 bytes, and
#: SUBSCRIBE/SUBACK rarely pass a few hundred).
MAX_RESYNC_PACKET_BYTES = 4096
#: v5 property identifier of "Topic Alias" (two-byte integer).
TOPIC_ALIAS = 0x23


@open_enum
class PacketType(enum.IntEnum):
    """MQTT control packet types (the high nibble of the first byte)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


#: Types each side may send (PUBLISH and its acknowledgements go both ways).
CLIENT_SENDS = frozenset({1, 3, 4, 5, 6, 7, 8, 10, 12, 14, 15})
SERVER_SENDS = frozenset({2, 3, 4, 5, 6, 7, 9, 11, 13, 14, 15})
#: Types that answer an earlier packet.
RESPONSE_TYPES = frozenset({2, 4, 5, 7, 9, 11, 13})
#: Types whose fixed-header flags must be 0b0010 (all others but PUBLISH: 0).
FLAGS_0010 = frozenset({6, 8, 10})
#: v3.1.1 CONNACK return codes that are the server's fault (3 = server unavailable).
V3_SERVER_REFUSALS = frozenset({3})
#: v5 reason codes >= 0x80 that are the server's fault; the other failures blame the client.
V5_SERVER_REASONS = frozenset({0x80, 0x83, 0x88, 0x89, 0x8B, 0x97, 0x9F})


def _response_kind(ptype: int) -> str:
    return {4: "publish", 5: "publish", 7: "release"}.get(ptype, "")


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttRequest(Message):
    """A packet that starts an exchange (or is one-way): CONNECT, PUBLISH, SUBSCRIBE, ..."""

    @property
    def protocol(self) -> str:
        return "mqtt"


    packet_type: PacketType
    #: "client" or "server": who sent it (a server PUBLISHes to subscribers)
    sender: str = "client"
    packet_id: int | None = None
    topic: str | None = None
    qos: int | None = None
    client_id: str | None = None
    topics: tuple[str, ...] = ()
    protocol_level: int | None = None
    retain: bool = False
    payload_size: int | None = None

    def __init__(  # pragma: no cover
        self, *, ts_ns: int, size: int = 0, errors: tuple[str, ...] = (), _parsed: bool = False,
        packet_type: PacketType, sender: str = "client", packet_id: int | None = None,
        topic: str | None = None, qos: int | None = None, client_id: str | None = None,
        topics: tuple[str, ...] = (), protocol_level: int | None = None, retain: bool = False,
        payload_size: int | None = None,
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.size = size  # type: ignore[misc]
        self.errors = errors  # type: ignore[misc]
        self.packet_type = packet_type  # type: ignore[misc]
        self.sender = sender  # type: ignore[misc]
        self.packet_id = packet_id  # type: ignore[misc]
        self.topic = topic  # type: ignore[misc]
        self.qos = qos  # type: ignore[misc]
        self.client_id = client_id  # type: ignore[misc]
        self.topics = topics  # type: ignore[misc]
        self.protocol_level = protocol_level  # type: ignore[misc]
        self.retain = retain  # type: ignore[misc]
        self.payload_size = payload_size  # type: ignore[misc]
        self.__post_init__(_parsed)

    @property
    def key(self) -> Hashable | None:
        t = self.packet_type
        if t is PacketType.CONNECT:
            return ("connect",)
        if t is PacketType.PINGREQ:
            return ("ping",)
        if t is PacketType.PUBLISH:
            return (self.sender, "publish", self.packet_id)
        if t is PacketType.PUBREL:
            return (self.sender, "release", self.packet_id)
        return (t.name.lower(), self.packet_id)

    @property
    def expects_response(self) -> bool:
        if self.packet_type is PacketType.PUBLISH:
            return bool(self.qos)
        return self.packet_type not in (PacketType.DISCONNECT, PacketType.AUTH)


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttResponse(Message):
    """A packet that answers one: CONNACK, PUBACK/PUBREC/PUBCOMP, SUBACK, UNSUBACK, PINGRESP."""

    @property
    def protocol(self) -> str:
        return "mqtt"

    @property
    def direction(self) -> Direction:
        return RESPONSE

    packet_type: PacketType
    #: "client" or "server": who sent it
    sender: str = "server"
    packet_id: int | None = None
    #: CONNACK return/reason code; for SUBACK/UNSUBACK the first failure, else the first code
    return_code: int | None = None
    return_codes: tuple[int, ...] = ()
    session_present: bool | None = None
    #: whether the connection speaks MQTT 5 (reason codes are v5 codes)
    v5: bool = False

    def __init__(  # pragma: no cover
        self, *, ts_ns: int, size: int = 0, errors: tuple[str, ...] = (), _parsed: bool = False,
        packet_type: PacketType, sender: str = "server", packet_id: int | None = None,
        return_code: int | None = None, return_codes: tuple[int, ...] = (),
        session_present: bool | None = None, v5: bool = False,
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.size = size  # type: ignore[misc]
        self.errors = errors  # type: ignore[misc]
        self.packet_type = packet_type  # type: ignore[misc]
        self.sender = sender  # type: ignore[misc]
        self.packet_id = packet_id  # type: ignore[misc]
        self.return_code = return_code  # type: ignore[misc]
        self.return_codes = return_codes  # type: ignore[misc]
        self.session_present = session_present  # type: ignore[misc]
        self.v5 = v5  # type: ignore[misc]
        self.__post_init__(_parsed)

    @property
    def key(self) -> Hashable | None:
        t = self.packet_type
        if t is PacketType.CONNACK:
            return ("connect",)
        if t is PacketType.PINGRESP:
            return ("ping",)
        if t in (PacketType.SUBACK, PacketType.UNSUBACK):
            name = "subscribe" if t is PacketType.SUBACK else "unsubscribe"
            return (name, self.packet_id)
        # the PUBLISH/PUBREL was sent by the other side
        other = "server" if self.sender == "client" else "client"
        return (other, _response_kind(t), self.packet_id)

    @property
    def outcome(self) -> Status:
        code = self.return_code
        if not code:
            return Status.OK
        if self.packet_type == PacketType.CONNACK and not self.v5:
            return Status.SERVER_ERROR if code in V3_SERVER_REFUSALS else Status.CLIENT_ERROR
        if code < 0x80:
            return Status.OK  # v5 successes (granted QoS 1/2, "no subscription existed")
        return Status.SERVER_ERROR if code in V5_SERVER_REASONS else Status.CLIENT_ERROR


hand_init(MqttRequest, MqttResponse)


class FixedHeader(NamedTuple):
    ptype: int
    flags: int
    header_bytes: int
    length: int


def read_fixed_header(buf: bytes | bytearray, pos: int = 0) -> FixedHeader | None:
    """The fixed header at ``buf[pos]``, or ``None`` when more bytes are needed.

    Raises:
        MalformedError: reserved type 0, or a length longer than 4 bytes.
    """
    if pos >= len(buf):
        return None
    first = buf[pos]
    if first >> 4 == 0:
        raise MalformedError("reserved MQTT packet type 0")
    # a copy: an exception must not pin a view of the (resizable) stream buffer
    cur = Cursor(bytes(buf[pos + 1:pos + MAX_FIXED_HEADER_BYTES]))
    try:
        length = cur.mqtt_varint()
    except TruncatedError:
        return None
    except LimitExceededError:
        raise MalformedError("MQTT remaining length longer than 4 bytes") from None
    return FixedHeader(first >> 4, first & 0x0F, cur.pos + 1, length)


def check_flags(ptype: int, flags: int, sender: str) -> None:
    """Reject a type the sender may not send or flags the type may not carry."""
    allowed = CLIENT_SENDS if sender == "client" else SERVER_SENDS
    if ptype not in allowed:
        raise MalformedError(f"{sender} cannot send MQTT packet type {ptype}")
    if ptype == PacketType.PUBLISH:
        if flags & 0x06 == 0x06:
            raise MalformedError("PUBLISH with QoS 3")
    elif flags != (0x02 if ptype in FLAGS_0010 else 0):
        raise MalformedError(f"MQTT packet type {ptype} with flags {flags:#x}")


def _first_bytes(sender: str) -> frozenset[int]:
    """The first bytes of a fixed header ``sender`` may send (type and flags allowed)."""
    plausible = set()
    for first in range(0x10, 0x100):
        try:
            check_flags(first >> 4, first & 0x0F, sender)
        except MalformedError:
            continue
        plausible.add(first)
    return frozenset(plausible)


#: sender -> the first bytes its packets may start with: the resync rejects
#: every other byte without building a cursor (it tries every offset of a
#: buffer it hunts through, which cost about 4 us a byte before; the fuzzer's
#: 100 ms bound caught a 9 KiB hunt).
FIRST_BYTES = {sender: _first_bytes(sender) for sender in ("client", "server")}


def _string(cur: Cursor) -> str:
    return clip(cur.counted_string(cur.u16))


def _skip_properties(cur: Cursor) -> None:
    cur.skip(cur.mqtt_varint())


def _topic_alias(cur: Cursor) -> int | None:
    """Walk v5 PUBLISH properties; return the Topic Alias if present."""
    alias = None
    with cur.restrict_to(cur.mqtt_varint()) as props:
        while props.remaining:
            ident = props.mqtt_varint()
            if ident == TOPIC_ALIAS:
                alias = props.u16()
            elif ident == 0x01:                       # payload format indicator
                props.skip(1)
            elif ident == 0x02:                       # message expiry interval
                props.skip(4)
            elif ident in (0x03, 0x08, 0x09):  # content type, response topic, correlation
                props.skip(props.u16())
            elif ident == 0x0B:                       # subscription identifier
                props.mqtt_varint()
            elif ident == 0x26:                       # user property (string pair)
                props.skip(props.u16())
                props.skip(props.u16())
            else:
                raise MalformedError(f"property {ident:#x} not allowed in PUBLISH")
    return alias


#: Packets whose 3.1.1 form is exactly two bytes (a packet id, or CONNACK's flags
#: and code): longer, they carry MQTT 5's reason code and properties.
_TWO_BYTES_IN_311 = frozenset({PacketType.CONNACK, PacketType.PUBACK, PacketType.PUBREC,
                               PacketType.PUBREL, PacketType.PUBCOMP, PacketType.UNSUBACK})


def _only_v5(header: FixedHeader, body: bytes) -> bool:
    """Whether a packet can only be MQTT 5's: the evidence a connection whose
    CONNECT was not seen gives of its version (a PUBLISH gives none: its
    properties read as payload in 3.1.1)."""
    ptype = header.ptype
    if ptype in _TWO_BYTES_IN_311:
        return header.length > 2
    if ptype == PacketType.DISCONNECT:
        return header.length > 0
    if ptype == PacketType.AUTH:
        return True
    if ptype in (PacketType.SUBSCRIBE, PacketType.UNSUBSCRIBE):
        # 3.1.1's first topic filter has a length of at least one; MQTT 5's
        # property length (usually 0) comes first and reads as half of it.
        return len(body) >= 4 and body[2:4] == b"\x00\x00"
    return False


@mypyc_attr(allow_interpreted_subclasses=True)  # see libtrace/compiled.py
class MqttParser(StreamParser):
    """MQTT 3.1/3.1.1/5.0 over TCP."""

    protocol = "mqtt"
    idle_when_empty = True  # _parse: nothing of no bytes

    def __init__(self, *, transport: Transport = "tcp", mid_stream: bool = False) -> None:
        super().__init__(transport=transport, mid_stream=mid_stream)
        #: protocol level from CONNECT (None until seen: 3.1.1 rules apply)
        self.level: int | None = None
        self._aliases: dict[Direction, OrderedDict[int, str]] = {
            d: OrderedDict() for d in Direction}

    @property
    def v5(self) -> bool:
        return self.level == 5

    @staticmethod
    def _sender(side: Side) -> str:
        return "client" if side.direction is REQUEST else "server"

    def _parse(self, side: Side) -> Message | None:
        header = read_fixed_header(side.buf)
        if header is None:
            return None
        sender = self._sender(side)
        check_flags(header.ptype, header.flags, sender)
        total = header.header_bytes + header.length
        available = len(side.buf)
        if header.ptype == PacketType.PUBLISH and header.length > MAX_PUBLISH_HEAD_BYTES:
            if available < header.header_bytes + MAX_PUBLISH_HEAD_BYTES:
                return None
            take = header.header_bytes + MAX_PUBLISH_HEAD_BYTES
        elif header.length > MAX_MESSAGE_BYTES:
            raise MalformedError(f"MQTT packet of {header.length} bytes")
        elif available < total:
            return None
        else:
            take = total
        ts = side.ts_at(0)
        body = bytes(side.buf[header.header_bytes:take])
        if self.level is None and _only_v5(header, body):
            self.level = 5  # mid-stream: no CONNECT said so, this packet's shape does
        message = self._body(side, header, Cursor(body), ts, total)
        side.consume(take)
        side.skip = total - take
        return message

    def _body(self, side: Side, header: FixedHeader, cur: Cursor, ts: int,
              size: int) -> Message:
        ptype, sender = PacketType(header.ptype), self._sender(side)
        if ptype in RESPONSE_TYPES:
            return self._response(ptype, sender, cur, ts, size)
        if ptype is PacketType.CONNECT:
            return self._connect(cur, ts, size)
        if ptype is PacketType.PUBLISH:
            return self._publish(side, header, cur, ts, size)
        packet_id = topic = None
        topics: list[str] = []
        if ptype in (PacketType.PUBREL, PacketType.SUBSCRIBE, PacketType.UNSUBSCRIBE):
            packet_id = cur.u16()
            if ptype is not PacketType.PUBREL and self.v5:
                _skip_properties(cur)
            count = 0
            while ptype is not PacketType.PUBREL and cur.remaining:
                name = _string(cur)
                if ptype is PacketType.SUBSCRIBE:
                    cur.u8()  # subscription options
                count += 1
                if len(topics) < MAX_ARGS_KEPT:
                    topics.append(name)
            if ptype is not PacketType.PUBREL and not count:
                raise MalformedError(f"{ptype.name} without topics")
            topic = topics[0] if topics else None
        return MqttRequest(ts_ns=ts, size=size, packet_type=ptype, sender=sender,
                           packet_id=packet_id, topic=topic, topics=tuple(topics),
                           _parsed=True)

    def _connect(self, cur: Cursor, ts: int, size: int) -> Message:
        name = cur.counted_bytes(cur.u16)
        if name not in (b"MQTT", b"MQIsdp"):
            raise MalformedError(f"CONNECT for protocol {name[:16]!r}")
        level = cur.u8()
        cur.u8()  # connect flags
        cur.u16()  # keep alive
        errors: list[str] = []
        client_id = None
        self.level = level
        try:
            if level == 5:
                _skip_properties(cur)
            client_id = _string(cur)
        except TruncatedError as exc:
            errors.append(f"CONNECT payload: {exc}")
        return MqttRequest(ts_ns=ts, size=size, errors=tuple(errors),
                           packet_type=PacketType.CONNECT, client_id=client_id,
                           protocol_level=level, _parsed=True)

    def _publish(self, side: Side, header: FixedHeader, cur: Cursor, ts: int,
                 size: int) -> Message:
        qos = (header.flags >> 1) & 3
        topic: str | None = _string(cur)
        packet_id = cur.u16() if qos else None
        errors: tuple[str, ...] = ()
        if self.v5:
            alias = _topic_alias(cur)
            aliases = self._aliases[side.direction]
            if alias is not None and topic:
                aliases[alias] = topic
                aliases.move_to_end(alias)
                while len(aliases) > MAX_TOPIC_ALIASES:
                    aliases.popitem(last=False)
            elif alias is not None:
                topic = aliases.get(alias)
                if topic is None:
                    errors = (f"topic alias {alias} not seen",)
        payload = header.length - cur.pos
        return MqttRequest(ts_ns=ts, size=size, errors=errors, packet_type=PacketType.PUBLISH,
                           sender=self._sender(side), packet_id=packet_id, topic=topic,
                           qos=qos, retain=bool(header.flags & 1), payload_size=payload,
                           _parsed=True)

    def _response(self, ptype: PacketType, sender: str, cur: Cursor, ts: int,
                  size: int) -> Message:
        packet_id = session = None
        codes: list[int] = []
        if ptype is PacketType.CONNACK:
            session = bool(cur.u8() & 1)
            codes.append(cur.u8())
        elif ptype is not PacketType.PINGRESP:
            packet_id = cur.u16()
            if ptype in (PacketType.SUBACK, PacketType.UNSUBACK):
                if self.v5:
                    _skip_properties(cur)
                while cur.remaining and len(codes) < MAX_ARGS_KEPT:
                    codes.append(cur.u8())
                if ptype is PacketType.SUBACK and not codes:
                    raise MalformedError("SUBACK without return codes")
            elif self.v5 and cur.remaining:
                codes.append(cur.u8())
        if cur.remaining and self.level in (3, 4) and ptype is not PacketType.SUBACK:
            raise MalformedError(f"{ptype.name} with {cur.remaining} extra bytes")
        cur.rest()  # v5 properties or reason strings; SUBACK codes past the kept ones
        failures = [c for c in codes if c >= 0x80]
        code = failures[0] if failures else (codes[0] if codes else None)
        if ptype is PacketType.SUBACK and not failures:
            code = 0  # granted QoS 0/1/2 are all success
        return MqttResponse(ts_ns=ts, size=size, packet_type=ptype, sender=sender,
                            packet_id=packet_id, return_code=code, return_codes=tuple(codes),
                            session_present=session, v5=self.v5, _parsed=True)

    def _candidate(self, side: Side, pos: int) -> bool | None:
        """Whether a packet starts at ``pos``: ``None`` if it does not end in the buffer.

        It must parse and be followed by the end of the buffer or another
        plausible fixed header; packets other than PUBLISH and CONNECT must
        be short.
        """
        buf, sender = side.buf, self._sender(side)
        if buf[pos] not in FIRST_BYTES[sender] and pos + MAX_FIXED_HEADER_BYTES <= len(buf):
            # The verdict the full path below gives such a byte (a whole
            # length follows it, so read_fixed_header cannot ask for more).
            return False
        try:
            header = read_fixed_header(buf, pos)
            if header is None:
                return None
            check_flags(header.ptype, header.flags, sender)
        except MalformedError:
            return False
        if header.ptype not in (1, 3) and header.length > MAX_RESYNC_PACKET_BYTES:
            return False
        end = pos + header.header_bytes + header.length
        if end > len(buf):
            return None
        body = bytes(buf[pos + header.header_bytes:end])
        level = self.level
        if level is None and _only_v5(header, body):
            self.level = 5  # read it as what it is (_parse then keeps the level)
        try:
            self._body(side, header, Cursor(body), 0, 0)
            after = read_fixed_header(buf, end)
            if after is not None:
                check_flags(after.ptype, after.flags, sender)
        except (MalformedError, TruncatedError, LimitExceededError, ValueError):
            return False
        finally:
            self.level = level
        return True

    def _resync(self, side: Side) -> bool:
        waiting = None  # the first candidate that does not end in the buffer yet
        for pos in range(len(side.buf)):
            verdict = self._candidate(side, pos)
            if verdict:
                side.consume(pos)
                return True
            if verdict is None and waiting is None:
                waiting = pos
        if waiting:
            side.consume(waiting)
        return False

    def _reset(self, side: Side) -> None:
        self._aliases[side.direction].clear()


# Inference: whether a direction's first bytes are this protocol's.

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
    return 0 < length == len(topic) and bool(PRINTABLE.fullmatch(topic))


def _mqtt_plausible(kind: int, flags: int, body: bytes) -> bool:
    """Whether one whole packet (other than CONNECT) holds what its type needs."""
    if kind == 3:  # PUBLISH: a printable topic without wildcards, then the id if QoS > 0
        qos = (flags >> 1) & 3
        if qos == 3 or len(body) < 2:
            return False
        topic_len = int.from_bytes(body[:2], "big")
        topic = body[2:2 + topic_len]
        return (topic_len > 0 and len(body) >= 2 + topic_len + (2 if qos else 0)
                and bool(PRINTABLE.fullmatch(topic)) and not set(topic) & {0x23, 0x2B})
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


def _signature(data: bytes, udp: bool) -> Match:
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
        direction = REQUEST
    elif kinds <= SERVER_SENDS and not kinds <= CLIENT_SENDS:
        direction = RESPONSE
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
            return 0.95, REQUEST
    if data[0] == 0x20 and len(data) >= 4 and data[1] in (2, 3) and data[2] in (0, 1):
        return 0.35, RESPONSE  # CONNACK
    return None


# What libtrace knows of the protocol (see _spec.py): its signature for
# inference, above, and the rest.
SPEC = ProtocolSpec(
    name="mqtt",
    title="MQTT",
    parser=MqttParser,
    signature=_signature,
    ports=frozenset({1883, 8883}),
    request_summary=("packet_type", "topic|topics", "qos"),
    response_summary=("packet_type", "return_code"),
)

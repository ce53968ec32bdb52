"""DNS over UDP (one message per datagram) and TCP (2-byte length prefix).

The wire format is dnspython's (``dns.message.from_wire``); this module only
frames TCP messages, turns dnspython's errors into ours at one boundary, and
keeps the fields a record shows.  The QR bit, not the direction a datagram
was fed in, decides query or response, so a wrong guess of the client side
still pairs.  Pairing is by message id and question (name, case folded, and
type), as a resolver matches answers: glibc sends its A and AAAA queries with
one id when its clock is coarse, and the answers may come in either order.  A
reply without a question (FORMERR from some servers) pairs by id alone.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from mypy_extensions import mypyc_attr

from ..frozen import hand_init
from ._base import Side, StreamParser, Transport
from ._errors import MalformedError, TruncatedError
from ._events import RESPONSE, Direction, Message, Status, clip
from ._limits import MAX_DNS_ANSWERS_KEPT
from ._spec import Match, ProtocolSpec

#: A DNS header is 12 bytes; nothing shorter is a DNS message.
DNS_HEADER_BYTES = 12
#: RCODEs that blame the query; every other non-zero RCODE is the server's.
CLIENT_ERROR_RCODES = frozenset({"FORMERR", "NXDOMAIN", "YXDOMAIN", "YXRRSET", "NXRRSET",
                                 "NOTAUTH", "NOTZONE", "BADVERS"})
# dnspython raises its own errors, but malformed rdata can surface as these.
_FOREIGN_ERRORS = (dns.exception.DNSException, ValueError, KeyError, IndexError,
                   UnicodeError, struct.error, TypeError, OverflowError, AttributeError)


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsQuery(Message):
    """A DNS query (QR = 0)."""

    @property
    def protocol(self) -> str:
        return "dns"


    id: int
    name: str | None
    qtype: str | None
    opcode: str = "QUERY"

    def __init__(  # pragma: no cover
        self, *, ts_ns: int, size: int = 0, errors: tuple[str, ...] = (), _parsed: bool = False,
        id: int, name: str | None, qtype: str | None, opcode: str = "QUERY",
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.size = size  # type: ignore[misc]
        self.errors = errors  # type: ignore[misc]
        self.id = id  # type: ignore[misc]
        self.name = name  # type: ignore[misc]
        self.qtype = qtype  # type: ignore[misc]
        self.opcode = opcode  # type: ignore[misc]
        self.__post_init__(_parsed)

    @property
    def key(self) -> _Key:
        return _pairing_key(self.id, self.name, self.qtype)

    @property
    def loose_key(self) -> int:
        return self.id


_Key = tuple[int, str | None, str | None]


def _pairing_key(msg_id: int, name: str | None, qtype: str | None) -> _Key:
    return (msg_id, name.lower() if name is not None else None, qtype)


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsResponse(Message):
    """A DNS response (QR = 1)."""

    @property
    def protocol(self) -> str:
        return "dns"

    @property
    def direction(self) -> Direction:
        return RESPONSE

    id: int
    name: str | None
    qtype: str | None
    rcode: str
    answers: tuple[dict[str, Any], ...] = ()
    truncated: bool = False

    def __init__(  # pragma: no cover
        self, *, ts_ns: int, size: int = 0, errors: tuple[str, ...] = (), _parsed: bool = False,
        id: int, name: str | None, qtype: str | None, rcode: str,
        answers: tuple[dict[str, Any], ...] = (), truncated: bool = False,
    ) -> None:  # fmt: skip
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.size = size  # type: ignore[misc]
        self.errors = errors  # type: ignore[misc]
        self.id = id  # type: ignore[misc]
        self.name = name  # type: ignore[misc]
        self.qtype = qtype  # type: ignore[misc]
        self.rcode = rcode  # type: ignore[misc]
        self.answers = answers  # type: ignore[misc]
        self.truncated = truncated  # type: ignore[misc]
        self.__post_init__(_parsed)

    @property
    def key(self) -> _Key:
        return _pairing_key(self.id, self.name, self.qtype)

    @property
    def loose_key(self) -> int | None:
        """Only a reply without its question pairs by id alone."""
        return self.id if self.name is None else None

    @property
    def outcome(self) -> Status:
        if self.rcode == "NOERROR":
            return Status.OK
        return Status.CLIENT_ERROR if self.rcode in CLIENT_ERROR_RCODES else Status.SERVER_ERROR


hand_init(DnsQuery, DnsResponse)


#: The fewest bytes a question (the root name, type, class) and a resource
#: record (the root name, type, class, TTL, data length) take.
MIN_QUESTION_BYTES, MIN_RECORD_BYTES = 5, 11


def _counts_fit(wire: bytes) -> bool:
    """Whether the questions and records the header counts can fit in ``wire``."""
    counts: tuple[int, int, int, int] = struct.unpack_from(">HHHH", wire, 4)
    questions, answers, authorities, additionals = counts
    least: int = (MIN_QUESTION_BYTES * questions
             + MIN_RECORD_BYTES * (answers + authorities + additionals))  # fmt: skip
    return DNS_HEADER_BYTES + least <= len(wire)


def decode_dns(wire: bytes, ts_ns: int, *, strict: bool = False) -> Message:
    """Decode one DNS message.

    Args:
        wire: the message.
        ts_ns: its timestamp.
        strict: reject a message with any error (used to find boundaries);
            otherwise a message whose question parsed is kept with its errors.

    Raises:
        TruncatedError: shorter than a DNS header.
        MalformedError: dnspython cannot read it at all.
    """
    if len(wire) < DNS_HEADER_BYTES:
        raise TruncatedError(f"{len(wire)} bytes is shorter than a DNS header")
    msg_id, flags = struct.unpack_from(">HH", wire)
    if strict and not _counts_fit(wire):
        # dnspython would refuse it too, but only after reading up to all of it:
        # the TCP resync tries every offset of what it hunts through, and 48 KB of
        # a repeated pattern took 30 s of CPU (found by tox -e fuzz-deep).
        raise MalformedError("the header's counts do not fit in the message")
    try:
        msg = dns.message.from_wire(wire, ignore_trailing=not strict,
                                    continue_on_error=not strict, one_rr_per_rrset=True)
    except _FOREIGN_ERRORS as exc:
        raise MalformedError(f"not a DNS message: {type(exc).__name__}: {exc}") from None
    errors = tuple(clip(f"{type(e.exception).__name__}: {e.exception}", 200)
                   for e in getattr(msg, "errors", ()))
    if errors and not msg.question:
        raise MalformedError(f"not a DNS message: {errors[0]}")
    name = qtype = None
    if msg.question:
        question = msg.question[0]
        name = clip(question.name.to_text())
        qtype = dns.rdatatype.to_text(question.rdtype)
    if not flags & dns.flags.QR:
        return DnsQuery(ts_ns=ts_ns, size=len(wire), errors=errors, id=msg_id, name=name,
                        qtype=qtype, opcode=dns.opcode.to_text(dns.opcode.from_flags(flags)),
                        _parsed=True)
    answers: list[dict[str, Any]] = []
    for rrset in msg.answer:
        for rdata in rrset:
            if len(answers) >= MAX_DNS_ANSWERS_KEPT:
                break
            try:
                data = rdata.to_text()
            except _FOREIGN_ERRORS:
                data = "<undecodable>"
            answers.append({"name": clip(rrset.name.to_text()),
                            "type": dns.rdatatype.to_text(rrset.rdtype),
                            "ttl": rrset.ttl, "data": clip(data)})
    return DnsResponse(ts_ns=ts_ns, size=len(wire), errors=errors, id=msg_id, name=name,
                       qtype=qtype, rcode=dns.rcode.to_text(msg.rcode()),
                       answers=tuple(answers), truncated=bool(flags & dns.flags.TC),
                       _parsed=True)


@mypyc_attr(allow_interpreted_subclasses=True)  # see libtrace/compiled.py
class DnsParser(StreamParser):
    """DNS over UDP or TCP."""

    protocol = "dns"
    idle_when_empty = True  # _parse: nothing of no bytes
    transports = ("udp", "tcp")

    def __init__(self, *, transport: Transport = "udp", mid_stream: bool = False) -> None:
        super().__init__(transport=transport, mid_stream=mid_stream)

    def _parse_datagram(self, side: Side, data: bytes, ts_ns: int) -> Message:
        return decode_dns(data, ts_ns)

    def _parse(self, side: Side) -> Message | None:
        buf = side.buf
        if len(buf) < 2:
            return None
        length = int.from_bytes(buf[:2], "big")
        if length < DNS_HEADER_BYTES:
            raise MalformedError(f"TCP DNS length {length} is shorter than a header")
        if len(buf) < 2 + length:
            return None
        ts = side.ts_at(0)
        wire = bytes(buf[2:2 + length])
        side.consume(2 + length)
        return decode_dns(wire, ts)

    def _resync(self, side: Side) -> bool:
        # Try each offset: a length prefix followed by a message dnspython reads.
        buf = side.buf
        for pos in range(max(0, len(buf) - 1)):
            length = int.from_bytes(buf[pos:pos + 2], "big")
            if length < DNS_HEADER_BYTES:
                continue
            if len(buf) < pos + 2 + length:
                return False if pos == 0 else self._consume_to(side, pos)
            try:
                decode_dns(bytes(buf[pos + 2:pos + 2 + length]), 0, strict=True)
            except (MalformedError, TruncatedError):
                continue
            return self._consume_to(side, pos)
        return False

    @staticmethod
    def _consume_to(side: Side, pos: int) -> bool:
        side.consume(pos)
        return True


# Inference: whether a direction's first bytes are this protocol's.

#: More questions than this in one DNS message is implausible (one is usual).
DNS_MAX_QUESTIONS = 16


def _signature(data: bytes, udp: bool) -> Match:
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


# What libtrace knows of the protocol (see _spec.py): its signature for
# inference, above, and the rest.
SPEC = ProtocolSpec(
    name="dns",
    title="DNS",
    parser=DnsParser,
    signature=_signature,
    ports=frozenset({53, 5353}),
    request_summary=("name", "qtype"),
    response_summary=("rcode", "answers"),
)

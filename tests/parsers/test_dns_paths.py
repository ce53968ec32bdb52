"""DNS paths the cases table does not take: messages dnspython cannot read, an
answer that does not parse, the answers bound, a TCP length shorter than a
header, mid-stream resync past what is no message, and the signature's refusals."""

from __future__ import annotations

import dns.message
import dns.rrset
import pytest

from libtrace.parsers import Desync, Direction, DnsParser, DnsResponse, MalformedError
from libtrace.parsers._dns import SPEC, decode_dns
from libtrace.parsers._limits import MAX_DNS_ANSWERS_KEPT

from .test_dns import _tcp

#: The rest of an answer after its owner name: type A, class IN, TTL 60, and an
#: address of three bytes (rdlength 3), which no A record can be.
A_RECORD_BAD = b"\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x03\x01\x02\x03"


def _response(question: bool, answers: bytes, ancount: int) -> bytes:
    """A response (id 3) to a query for a.example. A, with or without its question,
    and ``answers`` (``ancount`` of them) appended as they are."""
    query = dns.message.make_query("a.example.", "A")
    query.id = 3
    wire = dns.message.make_response(query).to_wire()
    if not question:
        return wire[:4] + b"\x00\x00" + ancount.to_bytes(2, "big") + bytes(4) + answers
    return wire[:6] + ancount.to_bytes(2, "big") + wire[8:] + answers


def test_a_header_that_promises_questions_it_lacks_is_a_desync() -> None:
    parser = DnsParser()
    parser.feed("request", b"\x00\x01\x00\x00\x00\x05" + bytes(6), 7)
    assert parser.events() == [Desync(
        direction=Direction.REQUEST, ts_ns=7,
        reason="MalformedError: not a DNS message: FormError: DNS message is malformed.")]


def test_an_answer_that_does_not_parse_is_kept_as_an_error_when_the_question_parsed() -> None:
    resp = decode_dns(_response(True, b"\xc0\x0c" + A_RECORD_BAD, 1), 5)
    assert isinstance(resp, DnsResponse)
    assert (resp.id, resp.name, resp.qtype, resp.answers) == (3, "a.example.", "A", ())
    assert resp.errors == ("FormError: Text input is malformed.",)


def test_an_answer_that_does_not_parse_without_a_question_is_no_message() -> None:
    wire = _response(False, b"\x00" + A_RECORD_BAD, 1)  # owner: the root
    with pytest.raises(MalformedError) as raised:
        decode_dns(wire, 5)
    assert str(raised.value) == "not a DNS message: FormError: Text input is malformed."


def test_only_the_first_answers_are_kept() -> None:
    query = dns.message.make_query("many.example.", "A")
    response = dns.message.make_response(query)
    addresses = [f"192.0.2.{i}" for i in range(1, MAX_DNS_ANSWERS_KEPT + 9)]
    response.answer.append(dns.rrset.from_text("many.example.", 60, "IN", "A", *addresses))
    wire = response.to_wire()
    on_the_wire = [rrset[0].to_text() for rrset in dns.message.from_wire(
        wire, one_rr_per_rrset=True).answer]  # fmt: skip
    assert sorted(on_the_wire) == sorted(addresses)
    parser = DnsParser()
    parser.feed("response", wire, 1)
    (resp,) = parser.events()
    assert isinstance(resp, DnsResponse) and not resp.errors
    assert [a["data"] for a in resp.answers] == on_the_wire[:MAX_DNS_ANSWERS_KEPT]


def test_a_tcp_length_shorter_than_a_header_is_a_desync() -> None:
    query = dns.message.make_query("a.example.", "A").to_wire()
    parser = DnsParser(transport="tcp")
    parser.feed("request", b"\x00\x00" + _tcp(query), 1)
    evs = parser.events()
    assert [e.reason for e in evs if isinstance(e, Desync)] == [
        "MalformedError: TCP DNS length 0 is shorter than a header"]
    assert [m.name for m in evs if not isinstance(m, Desync)] == ["a.example."]


def test_mid_stream_resync_passes_over_short_lengths_and_undecodable_messages() -> None:
    """A length prefix of 12 before a header that claims a question it lacks does
    not decode strictly: resync goes past it (and past the small lengths inside it)
    to the message that does, a response long enough that every offset is tried."""
    query = dns.message.make_query("example.com.", "TXT")
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text(
        "example.com.", 60, "IN", "TXT", *[f'"{chr(97 + i) * 250}"' for i in range(13)]))
    garbage = b"\x00\x00\x00\x00\x00\x01" + bytes(6)
    parser = DnsParser(transport="tcp", mid_stream=True)
    parser.feed("response", _tcp(garbage) + _tcp(response.to_wire()), 1)
    (resp,) = parser.events()
    assert isinstance(resp, DnsResponse) and (resp.id, len(resp.answers)) == (query.id, 13)


def test_the_signature_refuses_what_is_shorter_than_a_header_or_does_not_decode() -> None:
    query = dns.message.make_query("a.example.", "A").to_wire()
    assert SPEC.signature(query, True) == (0.85, Direction.REQUEST)
    assert SPEC.signature(query[:11], True) is None
    assert SPEC.signature(query[:12] + b"\x07example", True) is None  # its question cut


def test_mid_stream_a_message_start_not_yet_whole_is_waited_for() -> None:
    wire = _tcp(dns.message.make_query("a.example.", "A").to_wire())
    parser = DnsParser(transport="tcp", mid_stream=True)
    parser.feed("request", wire[:10], 1)
    assert parser.events() == []
    parser.feed("request", wire[10:], 2)
    assert [(m.name, m.ts_ns) for m in parser.events()] == [("a.example.", 1)]

from __future__ import annotations

import dns.message
import dns.rcode
import dns.rrset
import pytest
from hypothesis import given
from hypothesis import strategies as st

from libtrace.parsers import Desync, DnsParser, DnsQuery, DnsResponse, Pairer, Status

from ._harness import MODES, assert_split_invariant, feed_chunks, messages, run


def _pair(name: str, rdtype: str, rcode: int = 0, answer: str | None = None,
          ) -> tuple[bytes, bytes, int]:
    query = dns.message.make_query(name, rdtype)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    if answer:
        response.answer.append(dns.rrset.from_text(name, 60, "IN", rdtype, answer))
    return query.to_wire(), response.to_wire(), query.id


CASES = [
    ("a", "example.com.", "A", 0, "1.2.3.4", Status.OK),
    ("aaaa", "example.com.", "AAAA", 0, "fd00::1", Status.OK),
    ("nxdomain", "nope.example.", "A", dns.rcode.NXDOMAIN, None, Status.CLIENT_ERROR),
    ("servfail", "x.example.", "MX", dns.rcode.SERVFAIL, None, Status.SERVER_ERROR),
]


def _tcp(wire: bytes) -> bytes:
    return len(wire).to_bytes(2, "big") + wire


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_udp(case: tuple) -> None:
    _, name, rdtype, rcode, answer, status = case
    q, r, qid = _pair(name, rdtype, rcode, answer)
    p, pairer = DnsParser(), Pairer()
    p.feed("request", q, 1)
    p.feed("response", r, 5)
    (record,) = [x for e in p.events() for x in pairer.add(e)]
    assert record.status is status and record.latency_ns == 4
    out = record.to_dict()
    assert out["request"] == {"id": qid, "name": name, "qtype": rdtype, "opcode": "QUERY"}
    assert out["response"]["rcode"] == dns.rcode.to_text(rcode)
    assert [a["data"] for a in out["response"]["answers"]] == ([answer] if answer else [])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_tcp(case: tuple, mode: str) -> None:
    _, name, rdtype, rcode, answer, _ = case
    q, r, qid = _pair(name, rdtype, rcode, answer)
    events = run(lambda: DnsParser(transport="tcp"), _tcp(q) * 2, _tcp(r), mode)
    msgs = messages(events)
    assert [type(m) for m in msgs] == [DnsQuery, DnsQuery, DnsResponse]
    assert {m.key for m in msgs} == {(qid, name.lower(), rdtype)}
    if mode != "junk":
        assert not [e for e in events if isinstance(e, Desync)]


def test_qr_bit_decides_the_kind() -> None:
    _, r, _ = _pair("a.example.", "A")
    p = DnsParser()
    p.feed("request", r, 1)  # fed the wrong way round
    assert isinstance(messages(p.events())[0], DnsResponse)


def test_garbage_datagram_is_a_desync() -> None:
    p = DnsParser()
    p.feed("request", b"\x00" * 5, 1)
    assert isinstance(p.events()[0], Desync)


@pytest.mark.fuzz
@given(st.binary(min_size=1, max_size=300))
def test_fuzz_udp_arbitrary(data: bytes) -> None:
    """A datagram is one message or one desync, never nothing and never more (an empty
    one ends the direction, as for any parser)."""
    p = DnsParser()
    p.feed("request", data, 1)
    assert len(p.events()) == 1


@pytest.mark.fuzz
@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=8), st.booleans())
def test_fuzz_tcp_arbitrary(data: bytes, cuts: list[int], mid: bool) -> None:
    assert_split_invariant(lambda: DnsParser(transport="tcp", mid_stream=mid), data, b"", cuts)


@pytest.mark.fuzz
@given(st.from_regex(r"[a-z]{1,10}(\.[a-z]{1,10}){0,3}\.", fullmatch=True),
       st.sampled_from(["A", "AAAA", "MX", "TXT", "SRV"]),
       st.lists(st.integers(0, 200), max_size=4))
def test_fuzz_generated_roundtrip(name: str, rdtype: str, cuts: list[int]) -> None:
    query = dns.message.make_query(name, rdtype)
    p = DnsParser(transport="tcp")
    (msg,) = messages(feed_chunks(p, "request", _tcp(query.to_wire()), cuts))
    assert (msg.fields()["name"], msg.fields()["qtype"], msg.id) == (name, rdtype, query.id)


def _message(wire_id: int, name: str, rdtype: str, *, answer: str | None = None) -> bytes:
    query = dns.message.make_query(name, rdtype)
    query.id = wire_id
    if answer is None:
        return query.to_wire()
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text(name, 60, "IN", rdtype, answer))
    return response.to_wire()


def test_a_and_aaaa_with_one_id_pair_by_question_whatever_the_answers_order() -> None:
    """glibc's coarse-clock case: both queries share an id; the AAAA answer comes first."""
    events = [
        ("request", _message(7, "example.com.", "A"), 1),
        ("request", _message(7, "example.com.", "AAAA"), 2),
        ("response", _message(7, "example.com.", "AAAA", answer="2001:db8::1"), 3),
        ("response", _message(7, "EXAMPLE.com.", "A", answer="192.0.2.1"), 4),  # 0x20 case
    ]
    parser, pairer = DnsParser(), Pairer()
    records = []
    for direction, wire, ts in events:
        parser.feed(direction, wire, ts)
        records += [r for e in parser.events() for r in pairer.add(e)]
    pairs = {(r.request.qtype, r.response.answers[0]["data"], r.latency_ns) for r in records}
    assert pairs == {("AAAA", "2001:db8::1", 1), ("A", "192.0.2.1", 3)}


def test_a_reply_without_its_question_pairs_by_id() -> None:
    query = dns.message.make_query("example.com.", "A")
    query.id = 9
    reply = dns.message.make_response(query)
    reply.question = []
    reply.set_rcode(dns.rcode.FORMERR)
    parser, pairer = DnsParser(), Pairer()
    parser.feed("request", query.to_wire(), 1)
    parser.feed("response", reply.to_wire(), 2)
    (record,) = [r for e in parser.events() for r in pairer.add(e)]
    assert record.request is not None and record.response is not None
    assert record.response.rcode == "FORMERR" and record.latency_ns == 1

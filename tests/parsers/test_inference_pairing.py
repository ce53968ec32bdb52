from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from libtrace.parsers import Direction, DnsQuery, Http1Request, Pairer, Status, infer

SIGNATURES = [
    ("http1-request", b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n", (), "http1", "request"),
    ("http1-response", b"HTTP/1.1 200 OK\r\n", (), "http1", "response"),
    ("http2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", (), "http2", "request"),
    ("redis-command", b"*1\r\n$4\r\nPING\r\n", (), "redis", "request"),
    ("mysql-greeting", b"\x4a\x00\x00\x00\x0a8.0.36\x00" + b"\x01" * 60, (), "mysql", "response"),
    ("mysql-query", b"\x09\x00\x00\x00\x03SELECT 1", (), "mysql", "request"),
    # Metadata v9 (flexible): header with tagged fields, then a null topics array,
    # allow_auto_topic_creation, the two authorized-operations flags, tagged fields.
    ("kafka-request", b"\x00\x00\x00\x17\x00\x03\x00\x09\x00\x00\x00\x07\x00\x07rdkafka"
     b"\x00\x00\x01\x00\x00\x00", (), "kafka", "request"),
    ("mqtt-connect", b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04test", (), "mqtt", "request"),
    ("dubbo", b"\xda\xbb\xc2\x00" + b"\x00" * 8 + b"\x00\x00\x00\x10", (), "dubbo", "request"),
    ("dns-tcp", b"\x00\x1d" + bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d"
                                           "0000010001"), (), "dns", "request"),
]


@pytest.mark.parametrize(("name", "data", "ports", "protocol", "direction"), SIGNATURES,
                         ids=[s[0] for s in SIGNATURES])
def test_signatures(name: str, data: bytes, ports: tuple, protocol: str, direction: str) -> None:
    verdict = infer(data, ports=ports)
    assert (verdict.protocol, verdict.direction) == (protocol, direction)
    assert 0.3 <= verdict.confidence <= 1.0


def test_port_only_raises_confidence() -> None:
    data = b"*1\r\n$4\r\nPING\r\n"
    assert infer(data, ports=(6379,)).confidence > infer(data).confidence
    assert infer(b"\x01\x02\x03 nothing known", ports=(6379,)).protocol is None


def test_dns_udp() -> None:
    wire = bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d0000010001")
    assert infer(wire, transport="udp").protocol == "dns"
    assert infer(wire, transport="tcp").protocol is None


@pytest.mark.fuzz
@given(st.binary(max_size=200), st.sampled_from(["tcp", "udp"]))
def test_fuzz_inference_never_raises(data: bytes, transport: str) -> None:
    verdict = infer(data, transport=transport, ports=(80,))
    assert verdict.protocol is None or 0.3 <= verdict.confidence <= 1.0


def _get(ts: int, path: str = "/") -> Http1Request:
    return Http1Request(ts_ns=ts, method="GET", path=path, version="1.1")


def test_flush_timeout_versus_unknown() -> None:
    pairer = Pairer(timeout_ns=100)
    pairer.add(_get(0, "/old"))
    pairer.add(_get(950, "/young"))
    pairer.add(DnsQuery(ts_ns=1000, id=7, name="a.", qtype="A"))
    records = pairer.flush()
    assert [(r.request.fields().get("path"), r.status) for r in records if r.request] == [
        ("/old", Status.TIMEOUT), ("/young", Status.UNKNOWN), (None, Status.UNKNOWN)]


def test_desync_drains_fifo() -> None:
    from libtrace.parsers import Desync
    pairer = Pairer()
    pairer.add(_get(1))
    records = pairer.add(Desync(direction=Direction.RESPONSE, ts_ns=2, reason="gap"))
    assert [r.status for r in records] == [Status.UNKNOWN]


def test_key_reuse_emits_the_old_request() -> None:
    pairer = Pairer()
    pairer.add(DnsQuery(ts_ns=1, id=7, name="a.", qtype="A"))
    assert pairer.add(DnsQuery(ts_ns=2, id=7, name="a.", qtype="AAAA")) == []  # another question
    (old,) = pairer.add(DnsQuery(ts_ns=3, id=7, name="a.", qtype="A"))  # the same again
    assert old.request is not None and old.request.ts_ns == 1


def test_bounded_pending() -> None:
    pairer = Pairer(max_pending=2)
    out = [r for i in range(5) for r in pairer.add(_get(i))]
    assert len(out) == 3 and all(r.status is Status.UNKNOWN for r in out)


@given(st.lists(st.booleans(), max_size=300), st.integers(1, 200))
@example([True] * 100 + [False] * 60 + [True] * 10 + [False] * 60, 200)  # a long queue emptied
@example([True] * 100, 40)  # one pushed out per request past max_pending
def test_keyless_responses_take_the_oldest_waiting_request(
    steps: list[bool], max_pending: int
) -> None:
    # Requests (True) and responses (False) in any order, against a plain queue:
    # each response answers the oldest request still waiting, a request beyond
    # max_pending pushes the oldest out as unknown, and flush empties the rest.
    from collections import deque

    from libtrace.parsers import Http1Response

    pairer, waiting = Pairer(max_pending=max_pending), deque[int]()
    for ts, is_request in enumerate(steps):
        if is_request:
            out = pairer.add(_get(ts, f"/{ts}"))
            waiting.append(ts)
            expected = [(waiting.popleft(), Status.UNKNOWN)] if len(waiting) > max_pending else []
        else:
            out = pairer.add(Http1Response(ts_ns=ts, status=200, version="1.1"))
            expected = [(waiting.popleft(), Status.OK)] if waiting else [(None, Status.OK)]
        assert [(r.request.ts_ns if r.request else None, r.status) for r in out] == expected
    assert [r.request.ts_ns for r in pairer.flush() if r.request] == list(waiting)
    assert pairer.flush() == []


# ---- recognising a connection from whatever message comes first -------------------


def _mqtt_packet(first: int, body: bytes) -> bytes:
    assert len(body) < 128
    return bytes([first, len(body)]) + body


def _publish(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    return _mqtt_packet(0x32, len(topic).to_bytes(2, "big") + topic
                        + packet_id.to_bytes(2, "big") + payload)  # fmt: skip


def test_mqtt_mid_session_from_a_burst_of_qos1_publishes() -> None:
    burst = b"".join(_publish(b"sensors/%d" % i, i + 1, b"21.5") for i in range(4))
    verdict = infer(burst[:-3])  # the last one cut short, as a segment may end
    assert verdict.protocol == "mqtt" and verdict.direction is None  # either side publishes


def test_mqtt_mid_session_from_subscribe_suback_and_pings() -> None:
    subscribe = _mqtt_packet(0x82, b"\x00\x07" + b"\x00\x05a/b/c" + b"\x01")
    verdict = infer(subscribe)
    assert (verdict.protocol, verdict.direction) == ("mqtt", Direction.REQUEST)
    suback = _mqtt_packet(0x90, b"\x00\x07\x01")
    ping = b"\xc0\x00"
    # Alone, acknowledgements and pings are too short to tell from noise: a port decides.
    assert infer(suback).protocol is None and infer(ping).protocol is None
    assert infer(suback, ports=(51000, 1883)).direction is Direction.RESPONSE
    assert infer(ping, ports=(51000, 1883)).direction is Direction.REQUEST


def test_mqtt_signatures_refuse_what_is_not_mqtt() -> None:
    assert infer(_mqtt_packet(0x32, b"\x00\x03a/#\x00\x01x")).protocol is None  # wildcard topic
    assert infer(_mqtt_packet(0x36, b"\x00\x01a\x00\x01")).protocol is None  # QoS 3
    assert infer(_mqtt_packet(0x83, b"\x00\x07\x00\x01a\x00")).protocol is None  # flags 0b0011


def test_dns_with_zero_or_several_questions() -> None:
    import dns.flags
    import dns.message
    import dns.name
    import dns.rrset

    announcement = dns.message.Message(id=0)  # mDNS: a response with answers, no question
    announcement.flags |= dns.flags.QR | dns.flags.AA
    announcement.answer.append(dns.rrset.from_text("printer.local.", 120, "IN", "A", "192.0.2.7"))
    verdict = infer(announcement.to_wire(), transport="udp", ports=(5353, 5353))
    assert (verdict.protocol, verdict.direction) == ("dns", Direction.RESPONSE)
    several = dns.message.make_query("a.example.", "A")
    several.question.append(dns.rrset.RRset(dns.name.from_text("b.example."), 1, 28))
    verdict = infer(several.to_wire(), transport="udp")
    assert (verdict.protocol, verdict.direction) == ("dns", Direction.REQUEST)
    assert infer(bytes(12), transport="udp").protocol is None  # an empty header is no message


def _h2_connection_bytes() -> tuple[bytes, bytes]:
    """A client's and a server's bytes of one h2c exchange, made by the h2 library
    (an independent implementation): preface and SETTINGS, then a GET and its answer."""
    import h2.config
    import h2.connection

    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    opening_c, opening_s = client.data_to_send(), server.data_to_send()
    server.receive_data(opening_c)
    client.receive_data(opening_s)
    acks_c, acks_s = client.data_to_send(), server.data_to_send()
    client.send_headers(1, [(":method", "GET"), (":path", "/x"), (":scheme", "http"),
                            (":authority", "h")], end_stream=True)  # fmt: skip
    request = client.data_to_send()
    server.receive_data(request)
    server.send_headers(1, [(":status", "200"), ("content-length", "2")])
    server.send_data(1, b"ok", end_stream=True)
    response = server.data_to_send()
    return opening_c + acks_c + request, opening_s + acks_s + response


def test_http2_mid_connection_from_headers_and_data_with_their_direction() -> None:
    client_bytes, server_bytes = _h2_connection_bytes()
    # The capture begins at the request's HEADERS frame (END_STREAM|END_HEADERS on
    # stream 1), and at the response's (END_HEADERS, then DATA).
    request = client_bytes[client_bytes.rindex(b"\x01\x05\x00\x00\x00\x01") - 3:]
    response = server_bytes[server_bytes.rindex(b"\x01\x04\x00\x00\x00\x01") - 3:]
    for data, side in ((request, Direction.REQUEST), (response, Direction.RESPONSE)):
        verdict = infer(data)
        assert (verdict.protocol, verdict.direction) == ("http2", side), data[:12]


def test_a_settings_ack_first_is_no_side_and_a_ping_needs_the_port() -> None:
    ack = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
    ping = b"\x00\x00\x08\x06\x00\x00\x00\x00\x00" + bytes(8)
    assert infer(ack).protocol is None and infer(ping).protocol is None
    verdict = infer(ack + ping, ports=(40000, 8080))
    assert (verdict.protocol, verdict.direction) == ("http2", None)
    settings = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + b"\x00\x03\x00\x00\x00\x64"
    assert infer(settings).direction is Direction.RESPONSE  # a server's opening SETTINGS


def test_a_kafka_response_does_not_pass_for_a_request() -> None:
    """A broker's responses from the fixture (a Metadata answer, a JoinGroup
    answer): their size and correlation id read as a request header with an
    empty client id, but the body does not read as that API's request, so
    inference does not take the server for the client (without the port)."""
    from pathlib import Path

    from libtrace.pcap._reader import read_packets

    capture = Path(__file__).resolve().parents[2] / "fixtures" / "kafka" / "tansu.pcap"
    answers = [p.payload for p in read_packets(str(capture)) if p.payload and p.sport == 19092]
    assert len(answers) > 10
    taken = [a[:12].hex() for a in answers if infer(a).direction is Direction.REQUEST]
    assert taken == []
    # Nor two of them back to back (a capture that begins between a request and
    # its answers: the conversation offers the sender's bytes so far, joined).
    joined = [a + b for a, b in itertools.pairwise(answers)]
    assert [j[:12].hex() for j in joined if infer(j).direction is Direction.REQUEST] == []


def test_mqtt5_unsubscribe_with_its_property_length_is_recognised() -> None:
    # MQTT 5 puts a property length (here 0) between the packet id and the topic.
    unsubscribe = _mqtt_packet(0xA2, b"\x00\x05" + b"\x00" + b"\x00\x0blibtrace/v5")
    assert (infer(unsubscribe).protocol, infer(unsubscribe).direction) == (
        "mqtt", Direction.REQUEST)
    garbage = _mqtt_packet(0xA2, b"\x00\x05" + b"\x00" + b"\x00\x0b\x01\x02")
    assert infer(garbage).protocol is None

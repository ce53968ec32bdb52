"""RecordPipeline on synthetic events: ordering, gaps, sides, TLS streams, bounds (sans-IO)."""

from __future__ import annotations

from typing import Any

import pytest

from libtrace import EventType, SocketEvent
from libtrace.parsers import Record
from libtrace.records import LiveRecord, RecordPipeline

from ._events import CLIENT, LIVE_KEYS, PCAP_KEYS, SERVER, Socket, records_json

SET = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n"
GET = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
OK = b"+OK\r\n"
HELLO = b"$5\r\nhello\r\n"
HTTP_GET = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"
HTTP_204 = b"HTTP/1.1 204 No Content\r\n\r\n"


def run(events: list[SocketEvent], **options: Any) -> list[dict[str, Any]]:
    return records_json(RecordPipeline(**options), events)


def exchange(sock: Socket, *pairs: tuple[bytes, bytes]) -> list[SocketEvent]:
    return [e for request, response in pairs for e in (sock.send(request), sock.recv(response))]


def test_both_ends_give_one_record_each_labelled_by_connect_and_accept() -> None:
    client = Socket(10, 3, CLIENT, SERVER, comm="redis-cli")
    server = Socket(20, 7, SERVER, CLIENT, comm="redis-server")
    events = [
        client.connect(),
        server.accept(),
        client.send(SET),
        server.recv(SET),
        server.send(OK),
        client.recv(OK),
        client.close(),
        server.close(),
    ]

    records = run(events)

    assert sorted((r["side"], r["pid"], r["comm"]) for r in records) == [
        ("client", 10, "redis-cli"),
        ("server", 20, "redis-server"),
    ]
    for record in records:
        assert list(record) == PCAP_KEYS + LIVE_KEYS
        assert (record["client"], record["server"]) == ("127.0.0.1:40000", "127.0.0.1:6379")
        assert record["request"]["command"] == "SET" and record["response"]["value"] == "OK"
        assert record["status"] == "ok" and record["tls"] is False
        assert record["container"] is None


def test_records_stay_typed_until_their_json() -> None:
    """The pipeline gives LiveRecords (the exchange, endpoints, who and where);
    only to_json() makes the dict, and it says what the attributes say."""
    client = Socket(10, 3, CLIENT, SERVER, comm="redis-cli")
    pipeline = RecordPipeline()
    events = [client.connect(), client.send(SET), client.recv(OK), client.close()]

    (record,) = [r for e in events for r in pipeline.feed(e)]

    assert isinstance(record, LiveRecord) and isinstance(record.exchange, Record)
    assert record.exchange.request is not None and record.exchange.request.command == "SET"
    assert (record.pid, record.comm, record.side, record.tls, record.container) == (
        10, "redis-cli", "client", False, None)
    data = record.to_json()
    assert data == {**record.exchange.to_dict(record.client, record.server), "pid": 10,
                    "comm": "redis-cli", "side": "client", "tls": False, "container": None}
    assert data["client"] == "127.0.0.1:40000" and data["protocol"] == record.protocol == "redis"


@pytest.mark.parametrize("sent_request", [True, False], ids=["egress-request", "ingress-request"])
def test_side_without_connect_or_accept_comes_from_who_sends_requests(sent_request: bool) -> None:
    sock = Socket(10, 3)
    if sent_request:
        events = [sock.send(GET), sock.recv(HELLO)]
    else:
        events = [sock.recv(GET), sock.send(HELLO)]

    (record,) = run(events)

    assert record["side"] == ("client" if sent_request else "server")
    assert record["request"]["command"] == "GET" and record["response"]["value"] == "hello"


def test_chunks_out_of_order_are_put_back_in_byte_order() -> None:
    sock = Socket(10, 3)
    first, second = sock.send(SET[:9]), sock.send(SET[9:])
    events = [sock.connect(), second, first, sock.recv(OK)]

    (record,) = run(events)

    assert record["request"]["args"] == ["k", "hello"] and record["status"] == "ok"


def test_a_capped_chunk_is_a_gap_never_glued_and_invents_no_record() -> None:
    sock = Socket(10, 3)
    big = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000\r\n" + b"v" * 1000 + b"\r\n"
    events = [
        sock.connect(),
        sock.send(big[:40], size=len(big)),  # the payload cap kept 40 bytes
        sock.recv(OK),
        sock.send(GET),
        sock.recv(HELLO),
    ]
    pipeline = RecordPipeline()

    records = records_json(pipeline, events)

    assert pipeline.stats.gaps == 1 and pipeline.stats.gap_bytes == len(big) - 40
    assert pipeline.stats.desyncs >= 1
    assert not any(r["request"] and r["request"]["command"] == "SET" for r in records)
    assert [r["request"]["command"] for r in records if r["request"]] == ["GET"]


def test_tls_plaintext_is_a_stream_apart_from_the_same_sockets_bytes() -> None:
    plain = Socket(10, 3, remote=("127.0.0.1", 443))
    tls = Socket(10, 3, remote=("127.0.0.1", 443), tls=True)
    ciphertext = bytes(range(23, 23 + 64))  # offsets 0… like the plaintext's
    events = [
        plain.connect(),
        plain.send(ciphertext),
        tls.send(HTTP_GET),
        plain.recv(ciphertext),
        tls.recv(HTTP_204),
        plain.close(),
    ]

    (record,) = run(events)

    assert record["tls"] is True and record["protocol"] == "http1"
    assert record["side"] == "client"  # the connect is the socket's, whichever stream
    assert record["request"]["path"] == "/index.html" and record["response"]["status"] == 204


def test_close_ends_the_connection_and_flushes_unanswered_requests() -> None:
    sock = Socket(10, 3)
    pipeline = RecordPipeline()

    assert pipeline.feed(sock.connect()) == []
    assert pipeline.feed(sock.send(GET)) == []
    (record,) = pipeline.feed(sock.close())

    assert record.exchange.status == "unknown" and record.exchange.response is None
    assert pipeline.connections == 0


def test_fd_reused_after_close_starts_a_new_connection_from_offset_zero() -> None:
    first = Socket(10, 3)
    second = Socket(10, 3, remote=("127.0.0.1", 6380))
    events = [
        first.connect(),
        *exchange(first, (GET, HELLO)),
        first.close(),
        second.connect(),
        *exchange(second, (SET, OK)),
    ]

    records = run(events)

    assert [(r["server"], r["request"]["command"]) for r in records] == [
        ("127.0.0.1:6379", "GET"),
        ("127.0.0.1:6380", "SET"),
    ]


def test_protocols_filters_records_and_skips_parsing_the_rest() -> None:
    redis = Socket(10, 3)
    http = Socket(10, 4, remote=("127.0.0.1", 80))
    events = [*exchange(redis, (GET, HELLO)), *exchange(http, (HTTP_GET, HTTP_204))]

    assert [r["protocol"] for r in run(events, protocols=["http1"])] == ["http1"]
    assert sorted(r["protocol"] for r in run(events)) == ["http1", "redis"]
    with pytest.raises(ValueError, match="no parser"):
        RecordPipeline(protocols=["gopher"])


def test_udp_peers_of_one_unconnected_socket_are_separate_conversations() -> None:
    import dns.message

    server = Socket(20, 5, ("127.0.0.1", 53), ("127.0.0.1", 1111), l4="udp", comm="dnsmasq")
    events = []
    for port, name in ((1111, "a.test."), (2222, "b.test.")):
        query = dns.message.make_query(name, "A")
        query.id = 7  # the same id from both peers: apart only by peer
        answer = dns.message.make_response(query)
        events += [
            server.recv(query.to_wire(), remote=("127.0.0.1", port)),
            server.send(answer.to_wire(), remote=("127.0.0.1", port)),
        ]

    records = run(events)

    assert sorted((r["client"], r["side"], r["status"]) for r in records) == [
        ("127.0.0.1:1111", "server", "ok"),
        ("127.0.0.1:2222", "server", "ok"),
    ]


def test_a_truncated_datagram_is_not_parsed() -> None:
    import dns.message

    sock = Socket(10, 5, remote=("127.0.0.1", 53), l4="udp")
    wire = dns.message.make_query("a.test.", "A").to_wire()
    pipeline = RecordPipeline()

    assert pipeline.feed(sock.send(wire[:12], size=len(wire))) == []
    assert pipeline.flush() == []
    assert pipeline.stats.truncated_datagrams == 1


def test_idle_connections_expire_and_connections_stay_bounded() -> None:
    pipeline = RecordPipeline(max_connections=4, idle_timeout_ns=10**9)
    sockets = [Socket(10, fd) for fd in range(3, 9)]
    out = []
    for sock in sockets:
        out += pipeline.feed(sock.send(GET))
        assert pipeline.connections <= 4
    assert pipeline.stats.evicted == 2
    assert [r.exchange.status for r in out] == ["unknown", "unknown"]

    late = Socket(10, 20)
    late.ts = sockets[-1].ts + 5 * 10**9
    expired = pipeline.feed(late.send(GET))

    assert len(expired) == 4 and pipeline.stats.expired == 4
    assert pipeline.connections == 1


def test_events_it_does_not_handle_are_ignored() -> None:
    sock = Socket(10, 3)
    pipeline = RecordPipeline()

    assert pipeline.feed(sock.event(EventType.EXEC)) == []
    assert pipeline.stats.events == 1 and pipeline.connections == 0


def test_exit_finishes_the_processes_connections() -> None:
    sock = Socket(10, 3)
    pipeline = RecordPipeline()
    pipeline.feed(sock.send(GET))

    (record,) = pipeline.feed(sock.event(EventType.EXIT))

    assert record.exchange.status == "unknown" and pipeline.connections == 0

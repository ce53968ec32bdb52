from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libtrace.parsers import ApiKey, Desync, KafkaParser, KafkaRequest, Pairer, Status
from libtrace.parsers._kafka import FIRST_FLEXIBLE, MAX_PREFIX_BYTES, is_flexible

from ._harness import MODES, assert_split_invariant, feed_chunks, messages, run, summary


# -- a small Kafka encoder (independent of the parser) ---------------------------------------
def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def kstr(text: str | None, flex: bool) -> bytes:
    if text is None:
        return uvarint(0) if flex else struct.pack(">h", -1)
    data = text.encode()
    return (uvarint(len(data) + 1) if flex else struct.pack(">h", len(data))) + data


def karray(items: list[bytes] | None, flex: bool) -> bytes:
    if items is None:
        return uvarint(0) if flex else struct.pack(">i", -1)
    return (uvarint(len(items) + 1) if flex else struct.pack(">i", len(items))) + b"".join(items)


def kbytes(data: bytes, flex: bool) -> bytes:
    return (uvarint(len(data) + 1) if flex else struct.pack(">i", len(data))) + data


def tags(flex: bool, *fields: tuple[int, bytes]) -> bytes:
    if not flex:
        return b""
    return uvarint(len(fields)) + b"".join(uvarint(t) + uvarint(len(d)) + d for t, d in fields)


def request(api: int, ver: int, corr: int, body: bytes, client: str | None = "app") -> bytes:
    flex = is_flexible(api, ver)
    head = struct.pack(">hhi", api, ver, corr) + kstr(client, False) + tags(flex)
    return struct.pack(">i", len(head) + len(body)) + head + body


def response(api: int, ver: int, corr: int, body: bytes, *header_tags: tuple[int, bytes],
             ) -> bytes:
    flex = is_flexible(api, ver) and api != ApiKey.ApiVersions
    head = struct.pack(">i", corr) + tags(flex, *header_tags)
    return struct.pack(">i", len(head) + len(body)) + head + body


def topic_ref(name: str, ver: int, uuid_since: int, flex: bool) -> bytes:
    return uuid.uuid5(uuid.NAMESPACE_DNS, name).bytes if ver >= uuid_since else kstr(name, flex)


def produce(ver: int, topics: dict[str, int], acks: int = 1) -> bytes:
    flex = ver >= 9
    body = (kstr(None, flex) if ver >= 3 else b"") + struct.pack(">hi", acks, 1000)
    body += karray([topic_ref(t, ver, 13, flex) + karray(
        [struct.pack(">i", p) + kbytes(b"\x00" * 61, flex) + tags(flex) for p in range(n)],
        flex) + tags(flex) for t, n in topics.items()], flex)
    return request(0, ver, 7, body + tags(flex))


def produce_response(ver: int, corr: int, error: int) -> bytes:
    flex = ver >= 9
    part = struct.pack(">ihq", 0, error, 42) + tags(flex)
    body = karray([topic_ref("t", ver, 13, flex) + karray([part], flex) + tags(flex)], flex)
    return response(0, ver, corr, body + struct.pack(">i", 0) + tags(flex), (3, b"zz"))


def fetch(ver: int, topics: list[str]) -> bytes:
    flex = ver >= 12
    head = (b"\xff" * 4 if ver <= 14 else b"") + struct.pack(">ii", 500, 1)
    head += (struct.pack(">i", 1 << 20) if ver >= 3 else b"") + (b"\x00" if ver >= 4 else b"")
    head += struct.pack(">ii", 0, -1) if ver >= 7 else b""
    part = struct.pack(">i", 0) + (struct.pack(">i", -1) if ver >= 9 else b"") + struct.pack(
        ">q", 5) + (struct.pack(">i", -1) if ver >= 12 else b"") + (
        struct.pack(">q", 0) if ver >= 5 else b"") + struct.pack(">i", 1 << 20) + tags(flex)
    body = karray([topic_ref(t, ver, 13, flex) + karray([part, part], flex) + tags(flex)
                   for t in topics], flex)
    return request(1, ver, 8, head + body + karray([], flex) + tags(flex))


def fetch_response(ver: int, corr: int, top: int, part_error: int) -> bytes:
    flex = ver >= 12
    body = struct.pack(">i", 0) + (struct.pack(">hi", top, 0) if ver >= 7 else b"")
    part = struct.pack(">ih", 0, part_error) + b"\x00" * 20
    body += karray([topic_ref("t", ver, 13, flex) + karray([part], flex)], flex)
    return response(1, ver, corr, body)


def metadata(ver: int, topics: list[str] | None) -> bytes:
    flex = ver >= 9
    if topics is None:
        items = None
    elif ver >= 10:
        items = [bytes(16) + kstr(t, flex) + tags(flex) for t in topics]
    else:
        items = [kstr(t, flex) + tags(flex) for t in topics]
    return request(3, ver, 9, karray(items, flex) + (b"\x01" if ver >= 4 else b"") + tags(flex))


def simple(api: int, ver: int, corr: int, error: int, throttle: bool) -> bytes:
    return response(api, ver, corr, (b"\x00" * 4 if throttle else b"") + struct.pack(">h", error)
                    + b"\x00" * 6)


API_VERSIONS = request(18, 3, 1, kstr("kafka-python", True) + kstr("3.0", True) + tags(True))
KEYS = ("api", "api_version", "correlation_id", "client_id", "topics", "error_code")


def req_row(api: str, ver: int, corr: int, topics: list[str] | None = None) -> dict:
    return {"api": api, "api_version": ver, "correlation_id": corr, "client_id": "app",
            "topics": topics or [], "error_code": None}


def resp_row(api: str, ver: int, corr: int, error: int | None) -> dict:
    return {"api": api, "api_version": ver, "correlation_id": corr, "client_id": None,
            "topics": None, "error_code": error}


CASES = [
    ("api-versions-header-v0", API_VERSIONS, simple(18, 3, 1, 35, False),
     [req_row("ApiVersions", 3, 1), resp_row("ApiVersions", 3, 1, 35)]),
    ("produce-v3", produce(3, {"a": 2, "b": 1}), produce_response(3, 7, 0),
     [req_row("Produce", 3, 7, ["a", "b"]), resp_row("Produce", 3, 7, 0)]),
    ("produce-v9-tagged-header", produce(9, {"orders": 1}), produce_response(9, 7, 6),
     [req_row("Produce", 9, 7, ["orders"]), resp_row("Produce", 9, 7, 6)]),
    ("produce-v13-topic-ids", produce(13, {"ids": 1}), produce_response(13, 7, 0),
     [req_row("Produce", 13, 7, [str(uuid.uuid5(uuid.NAMESPACE_DNS, "ids"))]),
      resp_row("Produce", 13, 7, 0)]),
    ("fetch-v4", fetch(4, ["x", "y"]), fetch_response(4, 8, 0, 1),
     [req_row("Fetch", 4, 8, ["x", "y"]), resp_row("Fetch", 4, 8, 1)]),
    ("fetch-v12", fetch(12, ["x"]), fetch_response(12, 8, 0, 0),
     [req_row("Fetch", 12, 8, ["x"]), resp_row("Fetch", 12, 8, 0)]),
    ("fetch-v15-session-error", fetch(15, ["x"]), fetch_response(15, 8, 70, 0),
     [req_row("Fetch", 15, 8, [str(uuid.uuid5(uuid.NAMESPACE_DNS, "x"))]),
      resp_row("Fetch", 15, 8, 70)]),
    ("metadata-v1-all", metadata(1, None), response(3, 1, 9, b"\x00" * 8),
     [req_row("Metadata", 1, 9), resp_row("Metadata", 1, 9, None)]),
    ("metadata-v9", metadata(9, ["m1", "m2"]), response(3, 9, 9, b"\x00" * 8),
     [req_row("Metadata", 9, 9, ["m1", "m2"]), resp_row("Metadata", 9, 9, None)]),
    ("metadata-v12", metadata(12, ["m"]), response(3, 12, 9, b"\x00" * 8),
     [req_row("Metadata", 12, 9, ["m"]), resp_row("Metadata", 12, 9, None)]),
    ("heartbeat-v0", request(12, 0, 4, b""), simple(12, 0, 4, 27, False),
     [req_row("Heartbeat", 0, 4), resp_row("Heartbeat", 0, 4, 27)]),
    ("join-group-v7", request(11, 7, 5, b""), simple(11, 7, 5, 79, True),
     [req_row("JoinGroup", 7, 5), resp_row("JoinGroup", 7, 5, 79)]),
    ("init-producer-id", request(22, 1, 6, b""), simple(22, 1, 6, 15, True),
     [req_row("InitProducerId", 1, 6), resp_row("InitProducerId", 1, 6, 15)]),
    ("sasl-handshake", request(17, 1, 2, kstr("PLAIN", False)), simple(17, 1, 2, 33, False),
     [req_row("SaslHandshake", 1, 2), resp_row("SaslHandshake", 1, 2, 33)]),
    ("find-coordinator-v4", request(10, 4, 3, b""), response(10, 4, 3, b"\x00" * 4 + karray(
        [kstr("g", True) + struct.pack(">i", 1) + kstr("h", True) + struct.pack(">ih", 9, 15)],
        True)), [req_row("FindCoordinator", 4, 3), resp_row("FindCoordinator", 4, 3, 15)]),
    ("create-topics-v7", request(19, 7, 11, karray([kstr("n", True) + struct.pack(">ih", 1, 1)
                                                    + karray([], True) + karray([], True)
                                                    + tags(True)], True)),
     response(19, 7, 11, b"\x00" * 4 + karray([kstr("n", True) + bytes(16) + b"\x00\x24"],
                                              True)),
     [req_row("CreateTopics", 7, 11, ["n"]), resp_row("CreateTopics", 7, 11, 36)]),
    ("delete-topics-v1", request(20, 1, 12, karray([kstr("d", False)], False) + b"\0" * 4),
     response(20, 1, 12, b"\x00" * 4 + karray([kstr("d", False) + b"\x00\x03"], False)),
     [req_row("DeleteTopics", 1, 12, ["d"]), resp_row("DeleteTopics", 1, 12, 3)]),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "request_bytes", "response_bytes", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_cases(name: str, request_bytes: bytes, response_bytes: bytes, expected: list,
               mode: str) -> None:
    events = run(KafkaParser, request_bytes, response_bytes, mode)
    assert summary(events, KEYS) == expected
    if mode != "junk":
        assert not [e for e in events if isinstance(e, Desync)]


def test_flexible_table_covers_the_required_apis() -> None:
    required = {"Produce": 9, "Fetch": 12, "ListOffsets": 6, "Metadata": 9, "OffsetCommit": 8,
                "OffsetFetch": 6, "FindCoordinator": 3, "JoinGroup": 6, "Heartbeat": 4,
                "LeaveGroup": 4, "SyncGroup": 4, "DescribeGroups": 5, "ListGroups": 3,
                "SaslHandshake": None, "ApiVersions": 3, "CreateTopics": 5, "DeleteTopics": 4,
                "InitProducerId": 2, "SaslAuthenticate": 2}
    assert {name: FIRST_FLEXIBLE[ApiKey[name]] for name in required} == required


def _records(*chunks: tuple[str, bytes]) -> list:
    parser, pairer, out = KafkaParser(), Pairer(), []
    for i, (direction, data) in enumerate(chunks):
        parser.feed(direction, data, ts_ns=i)
        for event in parser.events():
            out += pairer.add(event)
    return out + pairer.flush()


def test_pairing_by_correlation_id_out_of_order() -> None:
    records = _records(("request", request(12, 0, 1, b"") + request(12, 0, 2, b"")),
                       ("response", simple(12, 0, 2, 0, False) + simple(12, 0, 1, 7, False)))
    got = [(r.request.correlation_id, r.response.correlation_id, r.status) for r in records]
    assert got == [(2, 2, Status.OK), (1, 1, Status.SERVER_ERROR)]


def test_acks_zero_expects_no_response() -> None:
    (record,) = _records(("request", produce(3, {"t": 1}, acks=0)))
    assert record.request.acks == 0 and record.status is Status.OK and record.response is None


def test_response_without_request_is_kept_with_an_error() -> None:
    p = KafkaParser(mid_stream=True)
    p.feed("request", API_VERSIONS, 1)
    p.feed("response", simple(18, 3, 0, 0, False) + simple(18, 3, 1, 0, False), 2)
    evs = messages(p.events())
    # 0 answers a request from before the capture: whole at the buffer's start,
    # followed by a size that fits, and counted before the request seen (1), it is
    # kept (an orphan, with an error), and the stream stays aligned for the answer to 1.
    assert [(m.correlation_id, m.fields().get("error_code")) for m in evs] == [
        (1, None), (0, None), (1, 0)]
    assert evs[1].errors == ("no request seen for correlation id 0",)


def test_mid_stream_bytes_that_would_answer_after_the_requests_seen_are_not_an_answer() -> None:
    """A broker answers a connection's requests in order and clients count
    correlation ids up, so what begins the buffer with an id beyond the requests
    in flight is the inside of a cut message, not an orphan answer (the resync
    goes on to the answer of the request seen)."""
    p = KafkaParser(mid_stream=True)
    p.feed("request", API_VERSIONS, 1)
    p.feed("response", simple(18, 3, 99, 0, False) + simple(18, 3, 1, 0, False), 2)
    evs = messages(p.events())
    assert [(m.correlation_id, m.fields().get("error_code")) for m in evs] == [(1, None), (1, 0)]


def test_unknown_correlation_in_sync() -> None:
    p = KafkaParser()
    p.feed("response", simple(18, 3, 99, 0, False), 2)
    (msg,) = messages(p.events())
    assert msg.api is None and msg.errors == ("no request seen for correlation id 99",)


def test_large_produce_is_read_from_its_prefix() -> None:
    p = KafkaParser()
    wire = produce(3, {"big": 1})
    records = kbytes(b"\x00" * (2 * MAX_PREFIX_BYTES), False)
    big = request(0, 3, 70, kstr(None, False) + struct.pack(">hi", 1, 1000) + karray(
        [kstr("first", False) + karray([struct.pack(">i", 0) + records], False),
         kstr("second", False) + karray([], False)], False))
    events = []
    for i in range(0, len(big) + len(wire), 65536):
        p.feed("request", (big + wire)[i:i + 65536], i)
        events += p.events()
        assert len(p._sides["request"].buf) <= MAX_PREFIX_BYTES + 4 + 65536
    first, second = messages(events)
    assert first.topics == ("first",) and "only the first" in first.errors[0]
    assert second.topics == ("big",)


@pytest.mark.parametrize("bad", [struct.pack(">i", -5), struct.pack(">i", 2), b"\x7f" * 4,
                                 struct.pack(">ihhih", 10, -1, 0, 1, 0)])
def test_bad_size_desyncs(bad: bytes) -> None:
    p = KafkaParser()
    p.feed("request", bad + API_VERSIONS, 1)
    events = p.events()
    assert isinstance(events[0], Desync)
    assert [m.api.name for m in messages(events)] == ["ApiVersions"]


def test_topic_readers_of_less_common_shapes() -> None:
    create = request(19, 4, 1, karray([kstr("c1", False) + struct.pack(">ih", -1, -1) + karray(
        [struct.pack(">i", 0) + karray([struct.pack(">i", 1)], False)], False) + karray(
        [kstr("retention.ms", False) + kstr(None, False)], False)], False) + b"\0" * 5)
    delete = request(20, 6, 2, karray([kstr(None, True) + bytes(16) + tags(True),
                                       kstr("d2", True) + bytes(16) + tags(True)], True)
                     + b"\0" * 4 + tags(True))
    produce_null = request(0, 3, 3, kstr(None, False) + struct.pack(">hi", 1, 9) + karray(
        [kstr("p", False) + karray([struct.pack(">ii", 0, -1)], False)], False))
    produce_bad = request(0, 3, 4, kstr(None, False) + struct.pack(">hi", 1, 9) + karray(
        [kstr("p", False) + karray([struct.pack(">ii", 0, -7)], False)], False))
    p = KafkaParser()
    p.feed("request", create + delete + produce_null + produce_bad, 1)
    got = [(m.topics, len(m.errors)) for m in messages(p.events())]
    assert got == [(("c1",), 0), ((str(uuid.UUID(bytes=bytes(16))), "d2"), 0), (("p",), 0),
                   (("p",), 1)]


@pytest.mark.parametrize(("api", "ver", "body", "error"), [
    (0, 3, karray([], False), None),
    (0, 3, karray([kstr("t", False) + karray([], False)], False), None),
    (1, 11, b"\0" * 4 + b"\0\0" + b"\0" * 4 + karray([], False), None),
    (15, 1, b"\0" * 4 + karray([b"\x00\x10"], False), 16),
    (15, 0, karray([], False), None),
    (19, 2, b"\0" * 4 + karray([], False), None),
    (10, 4, b"\0" * 4 + karray([], True), None),
    (1, 0, karray([], False), None),
    (20, 0, karray([kstr("t", False) + b"\x00\x29"], False), 41),
])
def test_response_error_readers(api: int, ver: int, body: bytes, error: int | None) -> None:
    p = KafkaParser()
    p.feed("request", request(api, ver, 1, b""), 1)
    p.feed("response", response(api, ver, 1, body), 2)
    _, resp = messages(p.events())
    assert resp.error_code == error and not resp.errors


def test_topics_kept_are_bounded() -> None:
    p = KafkaParser()
    p.feed("request", metadata(1, [f"t{i}" for i in range(20)]), 1)
    p.feed("request", request(3, 1, 2, karray([kstr(None, False)], False)), 2)
    many, null = messages(p.events())
    assert len(many.topics) == 16 and null.topics == () and not null.errors


def test_inflight_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("libtrace.parsers._kafka.MAX_INFLIGHT", 2)
    p = KafkaParser()
    p.feed("request", b"".join(request(12, 0, i, b"") for i in range(5)), 1)
    p.events()
    assert list(p._inflight) == [3, 4]


def test_unknown_api_key_is_a_value() -> None:
    p = KafkaParser()
    p.feed("request", request(999, 0, 1, b"\x00"), 1)
    (msg,) = messages(p.events())
    assert isinstance(msg, KafkaRequest) and msg.fields()["api"] == "UNKNOWN_999"


def test_broken_topic_list_attaches_an_error() -> None:
    p = KafkaParser()
    p.feed("request", request(3, 1, 1, struct.pack(">i", 5) + kstr("only", False)), 1)
    (msg,) = messages(p.events())
    assert msg.topics == ("only",) and "TruncatedError" in msg.errors[0]


@pytest.mark.fuzz
@given(st.binary(max_size=300), st.binary(max_size=300),
       st.lists(st.integers(0, 400), max_size=8), st.booleans())
def test_fuzz_arbitrary_bytes(req: bytes, resp: bytes, cuts: list[int], mid: bool) -> None:
    assert_split_invariant(lambda: KafkaParser(mid_stream=mid), req, resp, cuts)


@pytest.mark.fuzz
@given(st.sampled_from([0, 1, 3]), st.integers(0, 15),
       st.lists(st.text(min_size=1, max_size=20), min_size=0, max_size=5),
       st.binary(max_size=60), st.lists(st.integers(0, 2000), max_size=6))
def test_fuzz_generated_requests_roundtrip(api: int, ver: int, topics: list[str],
                                           junk_body: bytes, cuts: list[int]) -> None:
    if api == 0:
        wire = produce(ver, dict.fromkeys(topics, 1))
    elif api == 1:
        wire = fetch(ver, topics)
    else:
        wire = metadata(ver, topics)
    wire += request(api, ver, 77, junk_body)  # any body: the header still frames it
    events = feed_chunks(KafkaParser(), "request", wire, cuts)
    first, second = messages(events)
    names = list(dict.fromkeys(topics)) if api == 0 else topics
    uuid_since = 10 if api == 3 else 13
    if ver < uuid_since or api == 3:
        assert list(first.topics) == names[:16] and not first.errors
    assert second.correlation_id == 77 and not [e for e in events if isinstance(e, Desync)]


@pytest.mark.fuzz
@given(st.sampled_from(sorted(FIRST_FLEXIBLE)), st.integers(0, 20), st.binary(max_size=80))
def test_fuzz_every_api_response(api: int, ver: int, body: bytes) -> None:
    p = KafkaParser()
    p.feed("request", request(api, ver, 1, b""), 1)
    p.feed("response", response(api, ver, 1, body), 2)
    events = messages(p.events())
    assert len(events) == 2 and events[1].api == api

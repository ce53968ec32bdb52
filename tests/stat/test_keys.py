"""Each protocol's key, the path template and the SQL shape (``libtrace.stat.keys``)."""

from __future__ import annotations

import pytest

from libtrace.flows import FlowRecord
from libtrace.parsers import (
    ApiKey,
    Command,
    DnsQuery,
    DnsResponse,
    DubboRequest,
    Http1Request,
    Http2Request,
    KafkaRequest,
    KafkaResponse,
    Message,
    MqttRequest,
    MysqlRequest,
    MysqlResponse,
    PacketType,
    Record,
    RedisRequest,
    Status,
)
from libtrace.stat.keys import (
    DIMENSIONS,
    KEYS,
    MAX_KEY_CHARS,
    NO_REQUEST,
    key_of,
    parse_by,
    path_template,
    sql_shape,
)


def exchange(protocol: str, request: Message | None, response: Message | None = None,
             status: Status = Status.OK) -> Record:  # fmt: skip
    return Record(protocol=protocol, ts_ns=1, latency_ns=None, status=status, request=request,
                  response=response)  # fmt: skip


@pytest.mark.parametrize(("target", "template"), [
    ("/", "/"),
    ("/index.html", "/index.html"),
    ("/users/42", "/users/{id}"),
    ("/users/42/orders/7?page=2&sort=asc", "/users/{id}/orders/{id}"),
    ("/items/123e4567-e89b-12d3-a456-426614174000#top", "/items/{id}"),
    ("/blobs/9f86d081884c7d65", "/blobs/{id}"),
    ("/blobs/deadbeefcafe", "/blobs/deadbeefcafe"),  # hex letters alone: a word, kept
    ("/v2/api", "/v2/api"),  # a digit inside a word is no id
    ("/a/0012ab", "/a/0012ab"),  # hex with digits, but short of eight
    ("http://example.test:8080/users/9?x=1", "/users/{id}"),  # a proxy's absolute form
    ("/files/٣", "/files/٣"),  # a non-ASCII digit is no id
    ("*", "*"),
])  # fmt: skip
def test_path_template(target: str, template: str) -> None:
    assert path_template(target) == template


@pytest.mark.parametrize(("query", "shape"), [
    ("SELECT * FROM t WHERE id = 42", "SELECT * FROM t WHERE id = ?"),
    ("SELECT * FROM t WHERE name = 'o''brien' AND x = \"y\"",
     "SELECT * FROM t WHERE name = ? AND x = ?"),
    ("SELECT  *\n FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (?, …)"),
    ("INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c')", "INSERT INTO t VALUES (?, …), …"),
    ("INSERT INTO t VALUES (1), (2)", "INSERT INTO t VALUES (?), …"),
    ("UPDATE t SET b = 0x1F, f = -1.5 WHERE k = 'x'", "UPDATE t SET b = ?, f = ? WHERE k = ?"),
    ("SELECT col1 FROM t2", "SELECT col1 FROM t2"),  # digits in names are not literals
])  # fmt: skip
def test_sql_shape(query: str, shape: str) -> None:
    assert sql_shape(query) == shape


def test_one_shape_for_the_same_statement_with_other_data() -> None:
    assert sql_shape("SELECT * FROM t WHERE id IN (1, 2)") == sql_shape(
        "SELECT * FROM t WHERE id IN (7, 8, 9, 10)")


#: One record of each protocol with the key it must have.
CASES = [
    ("http1", exchange("http1", Http1Request(ts_ns=1, method="GET", path="/u/12?q=1",
                                             version="1.1")), "GET /u/{id}"),
    ("http2", exchange("http2", Http2Request(ts_ns=1, stream_id=1, method="POST",
                                             path="/demo.Greeter/SayHello")),
     "POST /demo.Greeter/SayHello"),
    ("redis", exchange("redis", RedisRequest(ts_ns=1, command="get", args=("k",))), "GET"),
    ("mysql", exchange("mysql", MysqlRequest(ts_ns=1, command=Command.COM_QUERY,
                                             query="SELECT 1 FROM t WHERE a = 'x'")),
     "SELECT ? FROM t WHERE a = ?"),
    ("mysql", exchange("mysql", MysqlRequest(ts_ns=1, command=Command.COM_PING)), "COM_PING"),
    ("mysql", exchange("mysql", None, MysqlResponse(ts_ns=1, kind="greeting")), "(handshake)"),
    ("kafka", exchange("kafka", KafkaRequest(ts_ns=1, api=ApiKey.Produce, api_version=9,
                                             correlation_id=1, topics=("orders", "audit"))),
     "Produce orders,audit"),
    ("kafka", exchange("kafka", None, KafkaResponse(ts_ns=1, correlation_id=1,
                                                    api=ApiKey.Metadata)), "Metadata"),
    ("mqtt", exchange("mqtt", MqttRequest(ts_ns=1, packet_type=PacketType.PUBLISH,
                                          topic="a/b", qos=1)), "PUBLISH a/b"),
    ("mqtt", exchange("mqtt", MqttRequest(ts_ns=1, packet_type=PacketType.SUBSCRIBE,
                                          topics=("x", "y"))), "SUBSCRIBE x,y"),
    ("dns", exchange("dns", DnsQuery(ts_ns=1, id=1, name="example.test.", qtype="AAAA")),
     "AAAA example.test."),
    ("dns", exchange("dns", None, DnsResponse(ts_ns=1, id=0, name="printer.local.", qtype="A",
                                              rcode="NOERROR")), "A printer.local."),
    ("dubbo", exchange("dubbo", DubboRequest(ts_ns=1, request_id=1, service="org.demo.Svc",
                                             method="find")), "org.demo.Svc.find"),
    ("dubbo", exchange("dubbo", DubboRequest(ts_ns=1, request_id=2, heartbeat=True,
                                             event=True)), "(heartbeat)"),
]  # fmt: skip


@pytest.mark.parametrize(("protocol", "record", "key"), CASES,
                         ids=[f"{c[0]}-{c[2]}" for c in CASES])  # fmt: skip
def test_the_key_of_each_protocol(protocol: str, record: Record, key: str) -> None:
    assert key_of(record) == key


def test_every_protocol_has_a_key_function_and_a_case() -> None:
    from libtrace.parsers import PARSERS

    assert set(KEYS) == set(PARSERS) == {case[0] for case in CASES}


@pytest.mark.parametrize("protocol", sorted(KEYS))
def test_a_record_without_its_request_says_so(protocol: str) -> None:
    assert key_of(exchange(protocol, None)) == NO_REQUEST


def test_keys_are_clipped() -> None:
    long = exchange("redis", RedisRequest(ts_ns=1, command="X" * 500))
    key = key_of(long)
    assert len(key) == MAX_KEY_CHARS and key.endswith("…")


def test_dimensions() -> None:
    record = FlowRecord(exchange("redis", RedisRequest(ts_ns=1, command="GET"),
                                 status=Status.CLIENT_ERROR), "[::1]:50000", "[::1]:6379")
    values = {name: function(record) for name, function in DIMENSIONS.items()}
    assert values == {"protocol": "redis", "key": "GET", "server": "[::1]:6379",
                      "client": "[::1]", "process": "-", "status": "client_error"}  # fmt: skip


@pytest.mark.parametrize(("text", "error"), [
    ("protocol,nope", "nope"), ("key,key", "repeated"), ("", "choose from")])  # fmt: skip
def test_parse_by_refuses_unknown_and_repeated_dimensions(text: str, error: str) -> None:
    assert parse_by("server, key") == ("server", "key")
    with pytest.raises(ValueError, match=error):
        parse_by(text)

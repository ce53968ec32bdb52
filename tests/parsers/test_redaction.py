"""Redaction: each protocol's secrets never reach a record, its JSON or its row; off, they do.

The events are synthetic (sans-IO, ``tests/records/_events.Socket``), the
bytes real protocol messages; the pipeline is the one live tracing and
``libtrace pcap`` run (redaction happens in the flow layer, before pairing).
"""

from __future__ import annotations

import json
import struct

import h2.config
import h2.connection
import pytest

from libtrace.output import record_row
from libtrace.parsers.redaction import REDACTED, Redaction
from libtrace.records import RecordPipeline

from ..records._events import Socket
from .test_kafka import kbytes, request
from .test_mqtt import packet, s
from .test_mysql import greeting, login, ok, query

SECRET = "s3cr3t-Xy9"


def rendered(conversation: list[tuple[str, bytes]], redaction: Redaction, port: int) -> str:
    """Every output a record makes (JSON with headers, the table row), as one text."""
    sock = Socket(10, 3, remote=("127.0.0.1", port))
    pipeline = RecordPipeline(redaction=redaction)
    events = [sock.connect()]
    events += [sock.send(data) if who == "client" else sock.recv(data)
               for who, data in conversation]  # fmt: skip
    records = [r for e in [*events, sock.close()] for r in pipeline.feed(e)]
    assert records, "no record: the test's bytes were not parsed"
    assert pipeline.stats.redactions == redaction.count
    return "\n".join(json.dumps(r.to_json(headers=True)) + record_row(r.to_json()) for r in records)


def resp(*words: str) -> bytes:
    return f"*{len(words)}\r\n".encode() + b"".join(
        f"${len(w)}\r\n{w}\r\n".encode() for w in words)


def h2_exchange(headers: list[tuple[str, str]]) -> list[tuple[str, bytes]]:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    client.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":authority", "x"),
                            *headers], end_stream=True)  # fmt: skip
    request_bytes = client.data_to_send()
    server.receive_data(request_bytes)
    server.send_headers(1, [(":status", "200"), ("set-cookie", f"sid={SECRET}")], end_stream=True)
    return [("client", request_bytes), ("server", server.data_to_send())]


MQTT_CONNECT = packet(1, 0, s("MQTT") + bytes([4, 0xC2]) + struct.pack(">H", 60) + s("c1")
                      + s("user") + s(SECRET))  # fmt: skip
CASES = {
    "redis AUTH": (6379, [("client", resp("AUTH", "app", SECRET)), ("server", b"+OK\r\n")]),
    "redis HELLO AUTH": (6379, [("client", resp("HELLO", "3", "AUTH", "app", SECRET)),
                                ("server", b"%0\r\n")]),
    "redis MIGRATE AUTH2": (6379, [("client", resp("MIGRATE", "h", "1", "", "0", "5000", "AUTH2",
                                                   "app", SECRET, "KEYS", "k")),
                                   ("server", b"+OK\r\n")]),
    "redis CONFIG SET": (6379, [("client", resp("CONFIG", "SET", "maxmemory", "1mb",
                                                "requirepass", SECRET)), ("server", b"+OK\r\n")]),
    "redis ACL SETUSER": (6379, [("client", resp("ACL", "SETUSER", "bob", "on", f">{SECRET}")),
                                 ("server", b"+OK\r\n")]),
    "http1 headers": (80, [
        ("client", f"GET /a?id=7&access_token={SECRET} HTTP/1.1\r\nHost: x\r\n"
                   f"Authorization: Bearer {SECRET}\r\nCookie: sid={SECRET}\r\n\r\n".encode()),
        ("server", f"HTTP/1.1 200 OK\r\nSet-Cookie: sid={SECRET}\r\n"
                   "Content-Length: 0\r\n\r\n".encode()),
    ]),
    "http2 headers": (8080, h2_exchange([(":path", f"/a?password={SECRET}"),
                                         ("authorization", f"Basic {SECRET}")])),
    "mysql IDENTIFIED BY": (3306, [
        ("server", greeting()), ("client", login()), ("server", ok(2)),
        ("client", query(f"CREATE USER 'bob'@'%' IDENTIFIED BY '{SECRET}'")), ("server", ok(1)),
    ]),
    "mysql SET PASSWORD": (3306, [
        ("server", greeting()), ("client", login()), ("server", ok(2)),
        ("client", query(f"SET PASSWORD FOR 'bob'@'%' = PASSWORD('{SECRET}')")),
        ("server", ok(1)),
    ]),
    # Values the parsers never keep: the password of an MQTT CONNECT, Kafka SASL bytes.
    "mqtt CONNECT password": (1883, [("client", MQTT_CONNECT), ("server", packet(2, 0, b"\0\0"))]),
    "kafka SaslAuthenticate": (9092, [
        ("client", request(36, 1, 5, kbytes(f"\0app\0{SECRET}".encode(), False))),
        ("server", struct.pack(">ii", 18, 5) + struct.pack(">hh", 0, -1) + struct.pack(">i", 0)
         + struct.pack(">q", 0)),
    ]),
}
#: Cases whose secret is in a record only when redaction is off (the others never hold it).
KEPT_WHEN_OFF = {name for name in CASES if not name.startswith(("mqtt", "kafka"))}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_secret_never_appears_in_any_output(name: str) -> None:
    port, conversation = CASES[name]
    redaction = Redaction()

    text = rendered(conversation, redaction, port)

    assert SECRET not in text
    if name in KEPT_WHEN_OFF:
        assert REDACTED in text and redaction.count >= 1


@pytest.mark.parametrize("name", sorted(KEPT_WHEN_OFF))
def test_no_redact_keeps_it(name: str) -> None:
    port, conversation = CASES[name]

    text = rendered(conversation, Redaction.off(), port)

    assert SECRET in text and REDACTED not in text


def test_an_added_header_name_is_redacted_and_others_are_kept() -> None:
    conversation = [("client", f"GET / HTTP/1.1\r\nHost: x\r\nX-Team-Key: {SECRET}\r\n"
                               "X-Trace: keep-me\r\n\r\n".encode()),
                    ("server", b"HTTP/1.1 204 No Content\r\n\r\n")]  # fmt: skip

    assert SECRET in rendered(conversation, Redaction(), 80)  # not a default name
    text = rendered(conversation, Redaction().with_headers(["x-team-key"]), 80)
    assert SECRET not in text and "keep-me" in text


def test_sql_literals_all_become_placeholders() -> None:
    conversation = [("server", greeting()), ("client", login()), ("server", ok(2)),
                    ("client", query("SELECT name FROM users WHERE id = 42 AND mail = 'a@b.c'")),
                    ("server", ok(1))]  # fmt: skip

    text = rendered(conversation, Redaction(sql_literals=True), 3306)

    assert "WHERE id = ? AND mail = ?" in text and "a@b.c" not in text and "42" not in text


def test_credential_query_parameters_keep_the_rest_of_the_target_as_sent() -> None:
    redaction = Redaction()

    assert redaction.path("/p?q=a%20b&Token=x&tokenizer=t#top") == (
        f"/p?q=a%20b&Token={REDACTED}&tokenizer={REDACTED}#top")
    assert redaction.path("/p?q=1") == "/p?q=1" and redaction.path(None) is None
    assert redaction.count == 2


@pytest.mark.parametrize(("sql", "expected"), [
    ("ALTER USER u IDENTIFIED WITH caching_sha2_password BY \"pw\"",
     f"ALTER USER u IDENTIFIED WITH caching_sha2_password BY '{REDACTED}'"),
    ("GRANT ALL ON *.* TO u IDENTIFIED BY 'it''s'",
     f"GRANT ALL ON *.* TO u IDENTIFIED BY '{REDACTED}'"),
    ("SET PASSWORD = 'x\\'y'", f"SET PASSWORD = '{REDACTED}'"),
    ("SELECT 'IDENTIFIED' FROM t", "SELECT 'IDENTIFIED' FROM t"),
])  # fmt: skip
def test_sql_credential_literals(sql: str, expected: str) -> None:
    assert Redaction().sql(sql) == expected

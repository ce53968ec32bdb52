from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libtrace.parsers import Desync, MysqlParser, MysqlRequest, MysqlResponse, Pairer, Status
from libtrace.parsers._mysql import (
    CLIENT_COMPRESS,
    CLIENT_DEPRECATE_EOF,
    CLIENT_QUERY_ATTRIBUTES,
    CLIENT_ZSTD_COMPRESSION_ALGORITHM,
    MAX_PACKET_PREFIX_BYTES,
)

from ._harness import MODES, assert_split_invariant, feed_chunks, messages, run, summary

CAPS = 0x000FA68D  # PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH, CONNECT_WITH_DB, ...


# -- a small MySQL encoder (independent of the parser) ---------------------------------------
def pkt(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq]) + payload


def lenenc(n: int) -> bytes:
    if n < 0xFB:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little")
    return b"\xfd" + n.to_bytes(3, "little") if n < 1 << 24 else b"\xfe" + n.to_bytes(8, "little")


def lstr(text: str) -> bytes:
    return lenenc(len(text.encode())) + text.encode()


def greeting(caps: int = CAPS) -> bytes:
    body = (b"\x0a5.5.5-10.11.6-MariaDB\x00" + struct.pack("<I", 7) + b"12345678\x00"
            + struct.pack("<HBHH", caps & 0xFFFF, 0x21, 2, caps >> 16) + b"\x15" + bytes(10)
            + b"9abcdefghijk\x00mysql_native_password\x00")
    return pkt(0, body)


def login(caps: int = CAPS, user: str = "app", db: str | None = "shop") -> bytes:
    body = struct.pack("<IIB", caps, 1 << 24, 0x21) + bytes(23) + user.encode() + b"\x00"
    body += b"\x14" + b"s" * 20 + (db.encode() + b"\x00" if db else b"")
    return pkt(1, body + b"mysql_native_password\x00")


def command(cmd: int, arg: bytes = b"") -> bytes:
    return pkt(0, bytes([cmd]) + arg)


def query(sql: str) -> bytes:
    return command(0x03, sql.encode())


def ok(seq: int = 1, affected: int = 0, status: int = 2, header: int = 0) -> bytes:
    return pkt(seq, bytes([header]) + lenenc(affected) + lenenc(0) + struct.pack("<HH", status, 0))


def err(seq: int, code: int, state: str = "42S02", msg: str = "nope") -> bytes:
    return pkt(seq, b"\xff" + struct.pack("<H", code) + b"#" + state.encode() + msg.encode())


def eof(seq: int, status: int = 2) -> bytes:
    return pkt(seq, b"\xfe" + struct.pack("<HH", 0, status))


def coldef(seq: int, name: str = "c") -> bytes:
    return pkt(seq, lstr("def") + lstr("db") + lstr("t") + lstr("t") + lstr(name) + lstr(name)
               + b"\x0c\x21\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00")


def resultset(ncols: int, rows: list[list[str]], deprecate: bool, seq: int = 1,
              status: int = 2, binary: bool = False) -> bytes:
    out = pkt(seq, lenenc(ncols))
    for _ in range(ncols):
        seq += 1
        out += coldef(seq)
    if not deprecate:
        seq += 1
        out += eof(seq)
    for r in rows:
        seq += 1
        out += pkt(seq, (b"\x00\x00" if binary else b"") + b"".join(lstr(v) for v in r))
    seq += 1
    return out + (ok(seq, status=status, header=0xFE) if deprecate else eof(seq, status))


def prepare_ok(stmt: int, params: int, columns: int, deprecate: bool) -> bytes:
    out, seq = pkt(1, b"\x00" + struct.pack("<IHHBH", stmt, columns, params, 0, 0)), 1
    for count in (params, columns):
        for _ in range(count):
            seq += 1
            out += coldef(seq)
        if count and not deprecate:
            seq += 1
            out += eof(seq)
    return out


KEYS = ("command", "query", "kind", "error_code", "affected_rows", "rows")


def q(cmd: str, sql: str | None = None) -> dict:
    return {k: None for k in KEYS} | {"command": cmd, "query": sql}


def r(kind: str, **kw: object) -> dict:
    return {k: kw.get(k) for k in KEYS} | {"kind": kind}


ROWS = [["1", "apple"], ["2", "pear"], ["3", "fig"]]
STMT_EXECUTE = command(0x17, struct.pack("<IBI", 1, 0, 1) + b"\x00\x01\x03\x00"
                       + b"\x01\x00\x00\x00")
CASES = [
    ("query-ok", query("INSERT INTO t VALUES (1),(2),(3)"), ok(affected=3),
     [q("COM_QUERY", "INSERT INTO t VALUES (1),(2),(3)"), r("ok", affected_rows=3)]),
    ("query-error", query("SELECT * FROM missing"), err(1, 1146),
     [q("COM_QUERY", "SELECT * FROM missing"), r("error", error_code=1146)]),
    ("resultset-classic-inferred", query("SELECT 1"), resultset(2, ROWS, False),
     [q("COM_QUERY", "SELECT 1"), r("resultset", rows=3)]),
    ("resultset-deprecate-inferred", query("SELECT 1"), resultset(2, ROWS, True),
     [q("COM_QUERY", "SELECT 1"), r("resultset", rows=3)]),
    ("empty-resultsets-classic", query("A") + query("B"),
     resultset(1, [], False) + resultset(2, [], False),
     [q("COM_QUERY", "A"), q("COM_QUERY", "B"), r("resultset", rows=0),
      r("resultset", rows=0)]),
    ("empty-resultsets-deprecate", query("A") + query("B"),
     resultset(1, [], True) + resultset(2, [["x", "y"]], True),
     [q("COM_QUERY", "A"), q("COM_QUERY", "B"), r("resultset", rows=0),
      r("resultset", rows=1)]),
    ("handshake-auth-switch-deprecate",
     login(CAPS | CLIENT_DEPRECATE_EOF) + pkt(3, b"s" * 20) + query("SELECT 2"),
     greeting(CAPS | CLIENT_DEPRECATE_EOF) + pkt(2, b"\xfemysql_native_password\x00" + b"x" * 20)
     + ok(4) + resultset(1, [["a"], ["b"]], True),
     [q("LOGIN"), q("COM_QUERY", "SELECT 2"), r("greeting"), r("ok", affected_rows=0),
      r("resultset", rows=2)]),
    ("handshake-classic-error", login() + query("X"),
     greeting() + ok(2) + err(1, 1064, "42000"),
     [q("LOGIN"), q("COM_QUERY", "X"), r("greeting"), r("ok", affected_rows=0),
      r("error", error_code=1064)]),
    ("prepared-classic", command(0x16, b"SELECT a, b FROM t WHERE id > ?") + STMT_EXECUTE
     + command(0x19, struct.pack("<I", 1)) + command(0x0E),
     prepare_ok(1, 1, 2, False) + resultset(2, ROWS[:2], False, binary=True) + ok(1),
     [q("COM_STMT_PREPARE", "SELECT a, b FROM t WHERE id > ?"), q("COM_STMT_EXECUTE"),
      q("COM_STMT_CLOSE"), q("COM_PING"), r("ok"), r("resultset", rows=2),
      r("ok", affected_rows=0)]),
    ("prepared-deprecate-inferred", command(0x16, b"SELECT ?") + command(0x16, b"DO 1")
     + command(0x0E),
     prepare_ok(1, 1, 1, True) + prepare_ok(2, 0, 0, True) + ok(1),
     [q("COM_STMT_PREPARE", "SELECT ?"), q("COM_STMT_PREPARE", "DO 1"), q("COM_PING"),
      r("ok"), r("ok"), r("ok", affected_rows=0)]),
    ("multi-result", query("CALL p()"),
     resultset(1, [["x"]], False, status=0x0A) + ok(4, affected=0),
     [q("COM_QUERY", "CALL p()"), r("resultset", rows=1)]),
    ("admin-commands", command(0x02, b"shop") + command(0x09) + command(0x1B, b"\x00\x00")
     + command(0x01), ok(1) + pkt(1, b"Uptime: 5  Threads: 1") + eof(1),
     [q("COM_INIT_DB"), q("COM_STATISTICS"), q("COM_SET_OPTION"), q("COM_QUIT"),
      r("ok", affected_rows=0), r("ok"), r("eof")]),
    ("field-list", command(0x04, b"t\x00"), coldef(1) + coldef(2) + eof(3),
     [q("COM_FIELD_LIST"), r("eof", rows=2)]),
    ("prepare-columns-only-deprecate-inferred", command(0x16, b"SELECT 1") + command(0x0E),
     prepare_ok(3, 0, 1, True) + ok(1), [q("COM_STMT_PREPARE", "SELECT 1"), q("COM_PING"),
                                         r("ok"), r("ok", affected_rows=0)]),
    ("prepare-then-resultset-inferred", command(0x16, b"SELECT 1") + query("SELECT 2"),
     prepare_ok(3, 0, 1, True) + resultset(1, [["v"]], True),
     [q("COM_STMT_PREPARE", "SELECT 1"), q("COM_QUERY", "SELECT 2"), r("ok"),
      r("resultset", rows=1)]),
    ("errors-inside-result-sets", query("A") + query("B") + query("C"),
     pkt(1, b"\x02") + coldef(2) + err(3, 1317) + resultset(1, [["r"]], False)[:-9]
     + err(4, 1205) + pkt(1, b"\xff\x15\x04old style"),
     [q("COM_QUERY", "A"), q("COM_QUERY", "B"), q("COM_QUERY", "C"),
      r("error", error_code=1317, rows=0), r("error", error_code=1205, rows=1),
      r("error", error_code=1045)]),
    ("odd-answers", command(0x0E) + command(0x03, b"SELECT big"),
     pkt(1, b"\x05 not ok") + pkt(1, b"\xfc\x00\x01") + coldef(2) * 256 + eof(3) + eof(4),
     [q("COM_PING"), q("COM_QUERY", "SELECT big"), r("ok"), r("resultset", rows=0)]),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("name", "request_bytes", "response_bytes", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_cases(name: str, request_bytes: bytes, response_bytes: bytes, expected: list,
               mode: str) -> None:
    events = run(MysqlParser, request_bytes, response_bytes, mode)
    assert summary(events, KEYS) == expected
    if mode != "junk":
        assert not [e for e in events if isinstance(e, Desync)]


def _records(parser: MysqlParser, *chunks: tuple[str, bytes]) -> list:
    pairer, out = Pairer(), []
    for i, (direction, data) in enumerate(chunks):
        parser.feed(direction, data, ts_ns=i)
        for event in parser.events():
            out += pairer.add(event)
    return out + pairer.flush()


def test_lenenc_forms() -> None:
    from libtrace.parsers import Cursor, MalformedError
    from libtrace.parsers._mysql import lenenc as read
    for n in (0, 250, 251 + 5, 1 << 16, 1 << 24, 1 << 40):
        assert read(Cursor(lenenc(n))) == n
    assert read(Cursor(b"\xfb")) is None
    with pytest.raises(MalformedError):
        read(Cursor(b"\xff"))


@pytest.mark.parametrize(("wire", "want"), [
    (pkt(1, struct.pack("<HI", 0x0005, 1 << 24)[:5] + b"old\x00pw"), ("old", None, ())),
    (pkt(1, struct.pack("<IIB", CAPS, 1, 0x21) + bytes(23) + b"cut"), (None, None, 1)),
    (pkt(1, struct.pack("<IIB", CAPS | (1 << 21), 1, 0x21) + bytes(23) + b"u\x00\x01x"
         + b"db\x00"), ("u", "db", ())),
    (pkt(1, struct.pack("<IIB", 0x209, 1, 0x21) + bytes(23) + b"u\x00pw\x00db\x00"),
     ("u", "db", ())),
])
def test_login_variants(wire: bytes, want: tuple) -> None:
    p = MysqlParser()
    p.feed("request", wire, 1)
    (msg,) = messages(p.events())
    got = (msg.user, msg.database, msg.errors if want[2] == () else len(msg.errors))
    assert got == want


def test_greeting_variants() -> None:
    p = MysqlParser()
    p.feed("response", pkt(0, b"\xff\x10\x04Too many connections"), 1)
    p.feed("response", pkt(0, b"\x0a8.0\x00\x01"), 2)
    p.feed("response", pkt(0, b"\x0a4.1\x00" + bytes(13) + b"\x00\x02"), 3)
    p.feed("response", ok(1), 4)  # no command waits for it
    refused, short, old, alone = messages(p.events())
    assert (refused.kind, refused.error_code, refused.sql_state) == ("error", 1040, None)
    assert short.server_version == "8.0" and "greeting" in short.errors[0]
    assert old.server_version == "4.1" and not old.errors and p.server_caps == 0x200
    assert alone.kind == "ok"


def test_zero_column_result_set_desyncs() -> None:
    p = MysqlParser()
    p.feed("request", query("SELECT"), 1)
    p.feed("response", pkt(1, b"\xfb") + ok(1), 2)
    events = p.events()
    assert isinstance(events[1], Desync)


def test_expected_queue_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("libtrace.parsers._mysql.MAX_PENDING_REQUESTS", 2)
    p = MysqlParser()
    p.feed("request", query("1") + query("2") + query("3"), 1)
    p.events()
    assert len(p._expected) == 2


def test_empty_command_desyncs() -> None:
    p = MysqlParser()
    p.feed("request", pkt(0, b"") + command(0x0E), 1)
    events = p.events()
    assert isinstance(events[0], Desync) and messages(events)[0].command.name == "COM_PING"


def test_real_order_handshake_pairs_login_with_final_ok() -> None:
    records = _records(MysqlParser(), ("response", greeting()), ("request", login()),
                       ("response", pkt(2, b"\x01more auth")), ("request", pkt(3, b"data")),
                       ("response", ok(4)), ("request", query("SELECT 1")),
                       ("response", resultset(1, [["1"]], False)),
                       ("request", command(0x19, b"\x01\x00\x00\x00") + command(0x01)))
    got = [(r.request and r.request.command.name, r.response and r.response.kind, r.status)
           for r in records]
    assert got == [(None, "greeting", Status.OK), ("LOGIN", "ok", Status.OK),
                   ("COM_QUERY", "resultset", Status.OK), ("COM_STMT_CLOSE", None, Status.OK),
                   ("COM_QUIT", None, Status.OK)]
    assert records[1].request.user == "app" and records[1].request.database == "shop"


def test_capability_flags_decide_over_inference() -> None:
    p = MysqlParser()
    _records(p, ("response", greeting(CAPS | CLIENT_DEPRECATE_EOF)), ("request", login(CAPS)))
    assert p.deprecate_eof is False and p.client_caps == CAPS


@pytest.mark.parametrize(("code", "status"), [(1146, Status.CLIENT_ERROR),
                                              (1213, Status.SERVER_ERROR)])
def test_error_classes(code: int, status: Status) -> None:
    assert MysqlResponse(ts_ns=0, kind="error", error_code=code).outcome is status


def test_ssl_request_skips_the_rest() -> None:
    p = MysqlParser()
    ssl = pkt(1, struct.pack("<IIB", CAPS | 0x800, 1 << 24, 0x21) + bytes(23))
    p.feed("request", ssl + b"\x16\x03\x01 tls bytes", 2)  # pulled after the greeting
    p.feed("response", greeting() + b"\x16\x03\x03 tls", 3)
    evs = p.events()
    assert sorted(m.fields()["command"] if isinstance(m, MysqlRequest) else m.kind
                  for m in messages(evs)) == ["SSL_REQUEST", "greeting"]
    assert not [e for e in evs if isinstance(e, Desync)]


def test_long_query_and_continued_packets_are_skipped() -> None:
    p = MysqlParser()
    sql = b"SELECT '" + b"x" * (MAX_PACKET_PREFIX_BYTES * 2) + b"'"
    continued = pkt(0, b"\x03" + b"y" * (0xFFFFFF - 1)) + pkt(1, b"tail")
    events = []
    wire = command(0x03, sql) + continued + command(0x0E)
    for i in range(0, len(wire), 1 << 20):
        p.feed("request", wire[i:i + (1 << 20)], i)
        events += p.events()
        assert len(p._sides["request"].buf) <= MAX_PACKET_PREFIX_BYTES + 4 + (1 << 20)
    got = [(m.command.name, len(m.query or "")) for m in messages(events)]
    assert got == [("COM_QUERY", 512), ("COM_QUERY", 512), ("COM_PING", 0)]


def test_mid_stream_resync() -> None:
    p = MysqlParser(mid_stream=True)
    p.feed("request", b"tail of a query')" + query("SELECT 3"), 1)
    p.feed("response", b"\x01row" + ok(1, affected=1), 2)
    got = [m.fields().get("query") or m.fields().get("kind") for m in messages(p.events())]
    assert got == ["SELECT 3", "ok"]


def test_mid_stream_a_long_query_in_several_segments_is_found_at_its_start() -> None:
    """A statement longer than the resync keeps (8 KiB) that does not end in the
    first segments: its start reads as SQL text, so the resync takes it there,
    before the rest arrives (waiting for its end would cut its start off)."""
    sql = "SELECT " + ", ".join(f"col_{i}" for i in range(2000)) + " FROM wide"
    wire = query(sql)
    p = MysqlParser(mid_stream=True)
    got = []
    for at in range(0, len(wire), 4096):
        p.feed("request", wire[at:at + 4096], at)
        got += messages(p.events())
    assert [m.fields().get("query")[:30] for m in got] == [sql[:30]]


def test_mid_stream_the_inside_of_a_cut_ok_is_not_an_answer() -> None:
    """The last eight bytes of an OK (``01 00 01 00 02 00 00 00``) hold a
    length, a sequence id 2 and a 0x00 that pass for another OK's header; its
    end falls nowhere near a packet boundary, so it is not taken, and the
    answers that follow stay paired with their commands."""
    p = MysqlParser(mid_stream=True)
    got = _records(p, ("response", ok(1, affected=1)[3:]),
                   ("request", command(0x02, b"shop")), ("response", ok(1)),
                   ("request", command(0x0E)), ("response", ok(1)))  # fmt: skip
    paired = [(r.request.fields()["command"], r.response.fields()["kind"])
              for r in got if r.request and r.response]  # fmt: skip
    assert paired == [("COM_INIT_DB", "ok"), ("COM_PING", "ok")]
    assert not [r for r in got if r.request is None]  # no stray answer of its own


@pytest.mark.parametrize("bad", [pkt(0, b""), pkt(1, b"\x03")])
def test_bad_packets_desync(bad: bytes) -> None:
    p = MysqlParser(mid_stream=False)
    p.feed("response", bad + b"\x00", 1)
    p.feed("response", b"", 2)
    assert any(isinstance(e, Desync) for e in p.events())


@pytest.mark.fuzz
@given(st.binary(max_size=300), st.binary(max_size=300),
       st.lists(st.integers(0, 400), max_size=8), st.booleans())
def test_fuzz_arbitrary_bytes(req: bytes, resp: bytes, cuts: list[int], mid: bool) -> None:
    assert_split_invariant(lambda: MysqlParser(mid_stream=mid), req, resp, cuts)


@pytest.mark.fuzz
@given(st.lists(st.tuples(st.text(max_size=40), st.integers(0, 4),
                          st.lists(st.lists(st.text(max_size=8), min_size=1, max_size=1),
                                   max_size=5), st.booleans()), min_size=1, max_size=5),
       st.lists(st.integers(0, 3000), max_size=6))
def test_fuzz_generated_exchanges_roundtrip(exchanges: list, cuts: list[int]) -> None:
    """Queries answered by OK, ERR or result sets (either EOF flow) pair up in order."""
    req, resp, want = b"", b"", []
    deprecate = exchanges[0][3]
    for sql, shape, rows, _ in exchanges:
        req += query(sql)
        if shape == 0:
            resp += ok(affected=len(sql))
            want.append(("ok", None))
        elif shape == 1:
            resp += err(1, 1000 + len(sql))
            want.append(("error", None))
        else:
            resp += resultset(1, rows, deprecate)
            want.append(("resultset", len(rows)))
    p = MysqlParser()
    events = feed_chunks(p, "request", req, cuts) + feed_chunks(p, "response", resp, cuts)
    assert [m.query for m in messages(events) if isinstance(m, MysqlRequest)] == [
        e[0][:511] + "…" if len(e[0]) > 512 else e[0] for e in exchanges]
    assert [(m.kind, m.rows) for m in messages(events) if isinstance(m, MysqlResponse)] == want


# -- MySQL 8 query attributes (CLIENT_QUERY_ATTRIBUTES) ------------------------------------------
ATTRS = CAPS | CLIENT_QUERY_ATTRIBUTES


def attributed_query(sql: str, attributes: list[tuple[int, str, bytes | None]] = ()) -> bytes:
    """COM_QUERY with attributes: (MYSQL_TYPE_*, name, binary value or None for NULL)."""
    body = lenenc(len(attributes)) + lenenc(1)
    if attributes:
        bitmap = bytearray((len(attributes) + 7) // 8)
        for i, (_, _, value) in enumerate(attributes):
            if value is None:
                bitmap[i // 8] |= 1 << (i % 8)
        body += bytes(bitmap) + b"\x01"
        body += b"".join(struct.pack("<H", kind) + lstr(name) for kind, name, _ in attributes)
        body += b"".join(value for _, _, value in attributes if value is not None)
    return command(0x03, body + sql.encode())


def _queries(parser: MysqlParser, *chunks: tuple[str, bytes]) -> list[str | None]:
    return [r.request.query for r in _records(parser, *chunks)
            if r.request is not None and r.request.command.name == "COM_QUERY"]


@pytest.mark.parametrize(("attributes", "shown"), [
    pytest.param([], None, id="none"),
    pytest.param([(253, "trace_id", lstr("4bf92f35")), (8, "n", struct.pack("<q", -7)),
                  (253, "gone", None), (12, "at", b"\x04\xe9\x07\x0c\x06")],
                 {"trace_id": "4bf92f35", "n": -7, "gone": None, "at": "2025-12-06 00:00:00"},
                 id="four"),
    pytest.param([(0x8008, "big", struct.pack("<Q", 2**64 - 1)),
                  (5, "ratio", struct.pack("<d", 0.25)),
                  (10, "day", b"\x04\xe9\x07\x01\x1f"),
                  (11, "span", b"\x08\x01" + b"\x01\x00\x00\x00" + b"\x02\x03\x04")],
                 {"big": 2**64 - 1, "ratio": 0.25, "day": "2025-01-31", "span": "-26:03:04"},
                 id="unsigned-double-date-time"),
])  # fmt: skip
def test_query_attributes_are_decoded_and_not_part_of_the_sql(attributes: list, shown) -> None:
    parser = MysqlParser()
    records = _records(parser, ("response", greeting(ATTRS)), ("request", login(ATTRS)),
                       ("response", ok(2)), ("request", attributed_query("SELECT 1", attributes)),
                       ("response", resultset(1, [["1"]], False)))  # fmt: skip
    (request,) = [r.request for r in records if r.request and r.request.command.name == "COM_QUERY"]
    assert request.query == "SELECT 1"
    assert request.fields().get("attributes") == shown  # absent without attributes


def test_query_attributes_mid_stream_are_recognised_from_the_payload() -> None:
    parser = MysqlParser(mid_stream=True)
    got = _queries(parser, ("request", attributed_query("SELECT 2")),
                   ("response", resultset(1, [["2"]], False)))
    assert got == ["SELECT 2"]


def test_without_the_capability_the_payload_is_sql() -> None:
    parser = MysqlParser()  # MariaDB: no query attributes, even if the bytes look like them
    got = _queries(parser, ("response", greeting(CAPS)), ("request", login(CAPS)),
                   ("response", ok(2)), ("request", query("\x00\x01SELECT 3")))
    assert got == ["\x00\x01SELECT 3"]


def test_a_login_whose_greeting_was_not_seen_is_still_a_login() -> None:
    """Mid-connection (the capture began after the server's greeting): the
    client's HandshakeResponse41 is known by its shape, and the server's answer
    (sequence 2) pairs with it."""
    from pathlib import Path

    from libtrace.parsers import Direction, infer
    from libtrace.pcap._reader import read_packets

    capture = Path(__file__).resolve().parents[2] / "fixtures" / "mysql" / "mariadb.pcap"
    packets = [p for p in read_packets(str(capture)) if p.payload]
    login = next(p for p in packets if p.payload[3] == 1 and p.dport == 13306)
    answer = next(p for p in packets if p.ts_ns > login.ts_ns and p.sport == 13306)
    verdict = infer(login.payload, ports=(login.sport, login.dport))
    assert (verdict.protocol, verdict.direction) == ("mysql", Direction.REQUEST)
    parser, pairer = MysqlParser(mid_stream=True), Pairer()
    parser.feed("request", login.payload, 1)
    parser.feed("response", answer.payload, 2)
    (record,) = [r for e in parser.events() for r in pairer.add(e)]
    assert record.request.fields()["command"] == "LOGIN"
    assert record.request.fields()["user"] == "app"
    assert record.response is not None and record.response.fields()["error_code"] == 1045


def test_a_result_set_at_the_start_of_a_mid_connection_capture_is_read_whole() -> None:
    """The column count (sequence 1) followed by a column definition whose catalog
    is "def" (sequence 2) is where the response side resynchronises: the result
    set pairs with its query instead of being skipped."""
    from pathlib import Path

    from libtrace.pcap._reader import read_packets

    capture = Path(__file__).resolve().parents[2] / "fixtures" / "mysql" / "mariadb.pcap"
    packets = [p for p in read_packets(str(capture)) if p.payload]
    query = next(p for p in packets if p.payload[4:5] == b"\x03" and b"id < 3" in p.payload)
    answer = next(p for p in packets if p.ts_ns > query.ts_ns and p.sport == 13306)
    parser, pairer = MysqlParser(mid_stream=True), Pairer()
    parser.feed("request", query.payload, 1)
    parser.feed("response", answer.payload, 2)
    (record,) = [r for e in parser.events() for r in pairer.add(e)]
    response = record.response.fields()
    assert (response["kind"], response["rows"]) == ("resultset", 2)


def test_a_query_longer_than_the_field_limit_is_flagged_truncated() -> None:
    from libtrace.parsers._limits import MAX_FIELD_CHARS

    sql = "SELECT '" + "x" * (MAX_FIELD_CHARS + 100) + "'"
    payload = b"\x03" + sql.encode()
    parser = MysqlParser(mid_stream=True)
    parser.feed("request", len(payload).to_bytes(3, "little") + b"\x00" + payload, 1)
    (request,) = messages(parser.events())
    assert len(request.fields()["query"]) == MAX_FIELD_CHARS
    assert request.errors == (f"query truncated: {MAX_FIELD_CHARS - 1} of {len(sql)} "
                              "characters kept",)  # fmt: skip
    short = b"\x03SELECT 1"
    parser.feed("request", len(short).to_bytes(3, "little") + b"\x00" + short, 2)
    (request,) = messages(parser.events())
    assert request.errors == ()


# -- the compressed protocol (CLIENT_COMPRESS) ---------------------------------------------------
def compressed(seq: int, plain: bytes, deflate: bool = True) -> bytes:
    """One compressed packet (the protocol's framing, zlib from the standard library)."""
    import zlib

    body = zlib.compress(plain) if deflate else plain
    return len(body).to_bytes(3, "little") + bytes([seq]) + (
        len(plain) if deflate else 0).to_bytes(3, "little") + body


COMPRESS = CAPS | CLIENT_COMPRESS


def test_compressed_protocol_after_the_login_is_inflated() -> None:
    """After the login's OK, each direction is compressed packets: one deflated,
    one sent as it is (short), and a result set split across two of them."""
    answer = resultset(2, [["1", "apple"], ["2", "pear"]], False)
    parser = MysqlParser()
    records = _records(
        parser, ("response", greeting(COMPRESS)), ("request", login(COMPRESS)),
        ("response", ok(2)),
        ("request", compressed(0, query("SELECT id, name FROM items"))),
        ("response", compressed(0, answer[:20]) + compressed(1, answer[20:])),
        ("request", compressed(1, command(0x0E), deflate=False)),
        ("response", compressed(2, ok(1), deflate=False)),
    )  # fmt: skip
    got = [(r.request.fields()["command"], r.request.query, r.response.fields()["kind"],
            r.response.fields().get("rows")) for r in records if r.request and r.response]
    assert got == [("LOGIN", None, "ok", None),
                   ("COM_QUERY", "SELECT id, name FROM items", "resultset", 2),
                   ("COM_PING", None, "ok", None)]  # fmt: skip


def test_compression_asked_by_one_side_only_is_not_in_force() -> None:
    parser = MysqlParser()
    got = _queries(parser, ("response", greeting(CAPS)), ("request", login(COMPRESS)),
                   ("response", ok(2)), ("request", query("SELECT 1")))
    assert got == ["SELECT 1"]


def test_a_corrupt_compressed_packet_says_so_and_stops() -> None:
    parser = MysqlParser()
    events = []
    for i, (direction, data) in enumerate([
        ("response", greeting(COMPRESS)), ("request", login(COMPRESS)), ("response", ok(2)),
        ("request", b"\x05\x00\x00\x00\x09\x00\x00" + b"notzl"),
        ("request", compressed(1, query("SELECT 2"))),
    ]):  # fmt: skip
        parser.feed(direction, data, i)
        events += parser.events()
    desyncs = [e.reason for e in events if isinstance(e, Desync)]
    assert desyncs and desyncs[0].startswith("compressed protocol:")
    assert not [e for e in events if isinstance(e, MysqlRequest) and e.query == "SELECT 2"]


def compressed_zstd(seq: int, plain: bytes) -> bytes:
    """One compressed packet whose body is a zstd frame (MySQL 8.0.18+)."""
    import zstandard

    body = zstandard.ZstdCompressor().compress(plain)
    return len(body).to_bytes(3, "little") + bytes([seq]) + len(plain).to_bytes(3, "little") + body


def test_zstd_compressed_protocol_is_read_too() -> None:
    zstd = CAPS | CLIENT_ZSTD_COMPRESSION_ALGORITHM
    answer = resultset(2, [["1", "apple"], ["2", "pear"]], False)
    parser = MysqlParser()
    records = _records(
        parser, ("response", greeting(zstd)), ("request", login(zstd)), ("response", ok(2)),
        ("request", compressed_zstd(0, query("SELECT id, name FROM items"))),
        ("response", compressed_zstd(0, answer)),
    )  # fmt: skip
    got = [(r.request.fields()["command"], r.request.query, r.response.fields().get("rows"))
           for r in records if r.request and r.response]
    assert got == [("LOGIN", None, None), ("COM_QUERY", "SELECT id, name FROM items", 2)]


def test_without_zstandard_zstd_is_named_and_the_rest_skipped(
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from libtrace.parsers import _mysql

    monkeypatch.setattr(_mysql, "_HAVE_ZSTD", False)
    zstd = CAPS | CLIENT_ZSTD_COMPRESSION_ALGORITHM
    parser = MysqlParser()
    records = _records(parser, ("response", greeting(zstd)), ("request", login(zstd)),
                       ("response", ok(2)), ("request", b"\x28\xb5\x2f\xfd" * 4))
    (login_record,) = [r for r in records if r.request and r.request.command.name == "LOGIN"]
    assert [r for r in records if r.request and r.request.command.name != "LOGIN"] == []
    assert login_record.response.errors == (
        "zstd-compressed protocol (no zstandard module here): the rest of the connection is "
        "not parsed",)

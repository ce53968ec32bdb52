"""tshark as the oracle for the MySQL, MQTT and Kafka fixtures.

Dubbo has no tshark dissector (Wireshark has none for Dubbo 2), so its
fixture — recorded against a FAKE server — is only checked by its golden
records in ``test_pcap.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import dpkt
import pytest

from libtrace.pcap import analyze

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DECODE_AS = {"mysql": "tcp.port==13306,mysql", "mqtt": "tcp.port==11883,mqtt",
             "kafka": "tcp.port==19092,kafka"}
SERVER_PORTS = {"mysql": "13306", "mqtt": "11883", "kafka": "19092"}

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")


def _records(path: Path) -> list[dict]:
    return [json.loads(json.dumps(r.to_json())) for r in analyze(str(path))]


def _tshark(pcap: Path, protocol: str, fields: list[str]) -> list[tuple[bool, list[list[str]]]]:
    """Per packet: (sent by the client, per field every value tshark found)."""
    out = subprocess.run(["tshark", "-r", str(pcap), "-d", DECODE_AS[protocol], "-T", "fields",
                          "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=;",
                          "-e", "tcp.srcport", *[a for f in fields for a in ("-e", f)]],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    rows = []
    for line in out.splitlines():
        port, *cols = line.split("|")
        values = [[v for v in col.split(";") if v] for col in cols]
        if any(values):
            rows.append((port != SERVER_PORTS[protocol], values))
    return rows


@needs_tshark
def test_mysql_against_tshark() -> None:
    pcap = FIXTURES / "mysql" / "mariadb.pcap"
    rows = _tshark(pcap, "mysql", ["mysql.command", "mysql.query", "mysql.error_code",
                                   "mysql.num_fields"])
    theirs_cmds = [(int(c[0]), q[0] if q else None) for client, (c, q, _, _) in rows
                   if client and c]
    ours = _records(pcap)
    names = {"COM_QUERY": 3, "COM_INIT_DB": 2, "COM_PING": 14, "COM_QUIT": 1,
             "COM_STMT_PREPARE": 22, "COM_STMT_EXECUTE": 23, "COM_STMT_CLOSE": 25,
             "COM_STMT_RESET": 26}
    ours_cmds = [(names[r["request"]["command"]], r["request"]["query"]) for r in ours
                 if r["request"] and r["request"]["command"] in names]
    assert ours_cmds == theirs_cmds
    theirs_errors = [int(e) for client, (_, _, errs, _) in rows if not client for e in errs]
    assert theirs_errors == [r["response"]["error_code"] for r in ours
                             if r["response"] and r["response"]["kind"] == "error"] == [1045, 1146]
    theirs_columns = [int(n) for client, (*_, n) in rows if not client for n in n]
    assert theirs_columns == [r["response"]["columns"] for r in ours
                              if r["response"] and r["response"]["columns"] is not None]


@needs_tshark
def test_mqtt_against_tshark() -> None:
    pcap = FIXTURES / "mqtt" / "mosquitto.pcap"
    rows = _tshark(pcap, "mqtt", ["mqtt.msgtype", "mqtt.msgid", "mqtt.topic", "mqtt.clientid",
                                  "mqtt.conack.val", "mqtt.connack.reason_code"])
    theirs = sorted((client, int(t)) for client, (types, *_) in rows for t in types)
    ids = sorted((client, int(i)) for client, (_, msgids, *_) in rows for i in msgids)
    assert ids == sorted((m["sender"] == "client", m["packet_id"]) for r in _records(pcap)
                         for m in (r["request"], r["response"]) if m and m["packet_id"])
    ours = sorted((m["sender"] == "client", _TYPES[m["packet_type"]]) for r in _records(pcap)
                  for m in (r["request"], r["response"]) if m)
    assert ours == theirs
    topics = sorted(t for _, (_, _, tops, *_) in rows for t in tops)
    ours_topics = []
    for record in _records(pcap):
        request = record["request"]
        if request and request["packet_type"] in ("SUBSCRIBE", "UNSUBSCRIBE"):
            ours_topics += request["topics"]
        elif request and request["packet_type"] == "PUBLISH":
            ours_topics.append(request["topic"])
    assert topics == sorted(ours_topics)
    ids = [c for _, (*_, cids, _, _) in rows for c in cids]
    assert ids == [r["request"]["client_id"] for r in _records(pcap)
                   if r["request"] and r["request"]["packet_type"] == "CONNECT"]
    codes = [int(c) for _, (*_, v3, v5) in rows for c in v3 + v5]
    assert codes == [r["response"]["return_code"] for r in _records(pcap)
                     if r["response"] and r["response"]["packet_type"] == "CONNACK"]


_TYPES = {"CONNECT": 1, "CONNACK": 2, "PUBLISH": 3, "PUBACK": 4, "PUBREC": 5, "PUBREL": 6,
          "PUBCOMP": 7, "SUBSCRIBE": 8, "SUBACK": 9, "UNSUBSCRIBE": 10, "UNSUBACK": 11,
          "PINGREQ": 12, "PINGRESP": 13, "DISCONNECT": 14, "AUTH": 15}


@needs_tshark
def test_kafka_against_tshark() -> None:
    pcap = FIXTURES / "kafka" / "tansu.pcap"
    rows = _tshark(pcap, "kafka", ["kafka.request_key", "kafka.api_version",
                                   "kafka.correlation_id", "kafka.client_id"])
    theirs = sorted((int(k[0]), int(v[0]), int(c[0]), cid[0]) for client, (k, v, c, cid) in rows
                    if client and k)
    ours = _records(pcap)
    assert theirs == sorted((_API[r["request"]["api"]], r["request"]["api_version"],
                             r["request"]["correlation_id"], r["request"]["client_id"])
                            for r in ours if r["request"])
    # tshark 4.0 reads ApiVersions responses right (it misreads some newer versions,
    # e.g. CreateTopics v7, whose topic id it does not know); each connection opens with
    # ApiVersions as correlation id 1
    answers = _tshark(pcap, "kafka", ["kafka.correlation_id", "kafka.error"])
    theirs_errors = [int(e[0]) for client, (c, e) in answers if not client and c == ["1"]]
    assert theirs_errors == [r["response"]["error_code"] for r in ours if r["response"]
                             and r["response"]["api"] == "ApiVersions"]


_API = {"Produce": 0, "Fetch": 1, "ListOffsets": 2, "Metadata": 3, "OffsetCommit": 8,
        "OffsetFetch": 9, "FindCoordinator": 10, "JoinGroup": 11, "Heartbeat": 12,
        "LeaveGroup": 13, "SyncGroup": 14, "ApiVersions": 18, "CreateTopics": 19}


@pytest.mark.parametrize("name", ["mysql/mariadb", "mqtt/mosquitto", "kafka/tansu",
                                  "dubbo/fake-dubbo"])
@pytest.mark.parametrize("skip", [3, 7, 12])
def test_capture_started_mid_connection(name: str, skip: int, tmp_path: Path) -> None:
    """Dropping the first packets (SYN, greeting, CONNECT, ...) degrades, never crashes."""
    with (FIXTURES / f"{name}.pcap").open("rb") as f:
        reader = dpkt.pcap.Reader(f)
        frames = list(reader)
        linktype = reader.datalink()
    target = tmp_path / "mid.pcap"
    with target.open("wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=linktype)
        for ts, buf in frames[skip:]:
            writer.writepkt(buf, ts=ts)
    records = _records(target)
    full = _records(FIXTURES / f"{name}.pcap")
    protocol = name.split("/")[0]
    assert records and all(r["protocol"] == protocol for r in records)
    assert len(records) >= len(full) // 2

"""tshark as the independent oracle of the fixtures' records, record by record.

Every golden record of every fixture tshark can dissect (Dubbo 2 aside) must
agree with tshark's reading of the same capture: the connection, the
request's and the response's timestamps, every field tshark knows on both
sides, the pairing and whether the exchange failed.  The mutations below are
the ones the self-written goldens alone did not catch; each must be seen.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from libtrace.flows import FlowRecord
from libtrace.pcap import analyze, oracle
from libtrace.pcap.oracle import VIEWS, OracleDisagrees, compare, oracle_records, verify
from libtrace.services import record as recorder

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PCAPS = sorted(p for p in [*FIXTURES.glob("*/*.pcap"), *FIXTURES.glob("*/*.pcapng")]
               if p.parent.name in VIEWS)  # fmt: skip

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")


#: Captures where tshark 4.0 decodes few messages, and why.
TSHARK_BLIND = {
    "midstream": "its MySQL dissector needs the connection's start",
    "zstd": "it does not decompress MySQL's zstd-compressed protocol",
}


def _golden(pcap: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in pcap.with_suffix(".expected.jsonl").open()]


def _disagreements(pcap: Path, records: list[dict[str, Any]]) -> list[str]:
    return [d for a in compare(str(pcap), records) for d in a.disagreements]


@pytest.mark.parametrize("pcap", PCAPS, ids=[p.stem for p in PCAPS])
def test_every_golden_record_agrees_with_tshark(pcap: Path) -> None:
    golden = _golden(pcap)
    agreements = compare(str(pcap), golden)
    assert [a.text() for a in agreements if not a.ok] == []
    assert [a.protocol for a in agreements] == [pcap.parent.name]
    assert agreements[0].matched == len(golden) > 0
    # tshark decodes most messages: the comparison is not by time alone (except where
    # tshark 4.0 is blind: there only the timestamps and the pairing are checked)
    messages = sum((r["request"] is not None) + (r["response"] is not None) for r in golden)
    if not any(part in pcap.name for part in TSHARK_BLIND):
        assert agreements[0].undecoded * 4 <= messages


def _shifted(record: dict[str, Any], factor: float) -> dict[str, Any]:
    ts = record["ts_ns"]
    return {**record, "ts_ns": ts + round(ts % 10**9 * factor)}


@pytest.mark.parametrize("pcap", PCAPS, ids=[p.stem for p in PCAPS])
def test_timestamps_off_by_a_thousandth_are_caught(pcap: Path) -> None:
    shifted = [_shifted(r, 0.001) for r in _golden(pcap)]
    assert _disagreements(pcap, shifted)


@pytest.mark.parametrize("pcap", PCAPS, ids=[p.stem for p in PCAPS])
def test_a_latency_off_by_a_microsecond_is_caught(pcap: Path) -> None:
    golden = _golden(pcap)
    index = next(i for i, r in enumerate(golden) if r["latency_ns"])
    golden[index] = {**golden[index], "latency_ns": golden[index]["latency_ns"] + 1000}
    assert len(_disagreements(pcap, golden)) == 2  # tshark's record unmatched, and ours


@pytest.mark.parametrize("pcap", PCAPS, ids=[p.stem for p in PCAPS])
def test_a_missing_record_is_caught(pcap: Path) -> None:
    golden = _golden(pcap)
    found = _disagreements(pcap, golden[1:])
    assert len(found) == 1 and "has no equal" in found[0]


#: Captures where tshark judges the responses.
WHOLE = [p for p in PCAPS if not any(part in p.name for part in TSHARK_BLIND)]


@pytest.mark.parametrize("pcap", WHOLE, ids=[p.stem for p in WHOLE])
def test_a_flipped_verdict_is_caught(pcap: Path) -> None:
    golden = _golden(pcap)
    # a record whose response tshark decoded (it can only judge those)
    judged = {(r.client, r.response_ts) for r in oracle_records(
        str(pcap), pcap.parent.name, {g["server"] for g in golden}) if r.failed is not None}
    index = next(i for i, r in enumerate(golden) if r["response"] and r["request"]
                 and (r["client"], r["ts_ns"] + r["latency_ns"]) in judged)
    status = golden[index]["status"]
    golden[index] = {**golden[index], "status": "server_error" if status == "ok" else "ok"}
    assert _disagreements(pcap, golden)


def test_swapped_responses_are_caught() -> None:
    """Two responses of one connection exchanged (a pairing bug) with their timestamps kept."""
    pcap = FIXTURES / "redis" / "redis.pcap"
    golden = _golden(pcap)
    first, second = [i for i, r in enumerate(golden) if r["client"] == "127.0.0.1:49892"][1:3]
    golden[first]["response"], golden[second]["response"] = (
        golden[second]["response"],
        golden[first]["response"],
    )
    assert len(_disagreements(pcap, golden)) == 4


@pytest.mark.parametrize(("protocol", "side", "name", "value"), [
    ("http1", "request", "path", "/elsewhere"),
    ("http1", "response", "status", 500),
    ("http2", "response", "body_size", 1),
    ("dns", "response", "answers", []),
    ("mysql", "request", "query", "SELECT 2"),
    ("mysql", "response", "rows", 99),
    ("mqtt", "request", "packet_id", 77),
    ("kafka", "request", "api_version", 99),
    ("redis", "request", "args", ["other"]),
])  # fmt: skip
def test_a_wrong_field_is_caught(protocol: str, side: str, name: str, value: object) -> None:
    pcap = next(p for p in PCAPS if p.parent.name == protocol and "-variants" not in p.name)
    golden = _golden(pcap)
    index = next(i for i, r in enumerate(golden) if r[side] and r[side].get(name) is not None)
    golden[index][side] = {**golden[index][side], name: value}
    assert _disagreements(pcap, golden)


def test_the_recorder_refuses_to_write_what_tshark_disagrees_with(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    (tmp_path / "redis").mkdir()
    pcap = tmp_path / "redis" / "redis.pcap"
    shutil.copy(FIXTURES / "redis" / "redis.pcap", pcap)
    written = pcap.with_suffix(".expected.jsonl")
    assert recorder.main(["redis", "--expected-only", "--out", str(tmp_path)]) == 0
    assert written.read_text() == (FIXTURES / "redis" / "redis.expected.jsonl").read_text()
    written.unlink()

    def wrong(path: str) -> list[FlowRecord]:
        return [FlowRecord(replace(r.exchange, latency_ns=(r.exchange.latency_ns or 0) + 1),
                           r.client, r.server) for r in analyze(path)]  # fmt: skip

    monkeypatch.setattr(oracle, "analyze", wrong)  # what the recorder writes, read wrong
    with pytest.raises(OracleDisagrees, match="tshark disagrees"):
        recorder.write_expected(pcap)
    assert recorder.main(["redis", "--expected-only", "--out", str(tmp_path)]) == 1
    assert "libtrace: error:" in capsys.readouterr().err
    assert not written.exists()


def test_dubbo_has_no_tshark_view() -> None:
    """Wireshark has no Dubbo 2 dissector: the oracle says nothing rather than agree."""
    pcap = FIXTURES / "dubbo" / "fake-dubbo.pcap"
    assert compare(str(pcap), _golden(pcap)) == []
    assert verify(str(pcap), _golden(pcap)) == []


def test_check_writes_expected_records_only_with_tshark(monkeypatch: pytest.MonkeyPatch) -> None:
    """``libtrace check --write-expected``: the wire's capture must pass the oracle first."""
    from libtrace.check import cli
    from libtrace.check._errors import CheckError
    from libtrace.pcap.oracle import _tshark

    cli._oracle_agrees(FIXTURES / "mqtt" / "mosquitto.pcap")
    monkeypatch.setattr(_tshark.shutil, "which", lambda name: None)
    with pytest.raises(CheckError, match="not writing expected records: tshark is not installed"):
        cli._oracle_agrees(FIXTURES / "mqtt" / "mosquitto.pcap")

"""The committed expected records: one file per scenario, run-independent, sorted."""

from __future__ import annotations

import json
import stat
from collections import Counter
from pathlib import Path

import pytest

from libtrace.check import expected_key, expected_path, read_expected
from libtrace.check._expected import write_expected
from libtrace.output import PRIVATE_MODE
from libtrace.services import SERVICES


@pytest.mark.parametrize("scenario", list(SERVICES))
def test_every_scenario_has_sorted_canonical_expected_records(scenario: str) -> None:
    path = expected_path(scenario)
    lines = path.read_text().splitlines()

    assert lines, f"{path} is empty"
    assert lines == sorted(lines)
    records = [json.loads(line) for line in lines]
    assert {r["protocol"] for r in records} == {SERVICES[scenario].protocol}
    assert [json.dumps(r, sort_keys=True) for r in records] == lines
    # Nothing of one run: no timing, no endpoints, no ports.
    assert all(set(r) == {"type", "protocol", "status", "request", "response"} for r in records)


def test_the_server_endpoint_becomes_a_placeholder_and_dns_ids_go() -> None:
    http = {"type": "record", "protocol": "http2", "status": "ok", "ts_ns": 5,
            "request": {"authority": "127.0.0.1:41915", "path": "/"}, "response": None}  # fmt: skip
    dns = {"type": "record", "protocol": "dns", "status": "ok",
           "request": {"id": 4711, "name": "a."},
           "response": {"id": 4711, "rcode": "NOERROR"}}  # fmt: skip

    assert json.loads(expected_key(http, "127.0.0.1:41915"))["request"]["authority"] == "{server}"
    key = json.loads(expected_key(dns, "127.0.53.1:53"))
    assert key["request"] == {"name": "a."} and key["response"] == {"rcode": "NOERROR"}


def test_written_expected_records_read_back_as_the_same_multiset(tmp_path: Path) -> None:
    keys = Counter({'{"a": 1}': 2, '{"b": 2}': 1})
    path = write_expected(tmp_path / "x.expected.jsonl", keys)

    assert path.read_text().splitlines() == ['{"a": 1}', '{"a": 1}', '{"b": 2}']
    assert stat.S_IMODE(path.stat().st_mode) == PRIVATE_MODE  # records: the owner's alone
    assert read_expected(path) == keys
    assert read_expected(tmp_path / "none.jsonl") is None

"""Smoke run of benchmarks/records.py: its JSON, and the accounting that holds at any speed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from benchmarks.records import replay_file, save_events
from libtrace import EventType
from libtrace.output import PRIVATE_MODE

from ..test_benchmarks import COMPAT, needs_redis, run_benchmark
from ._events import Socket


@pytest.mark.root
@pytest.mark.bpf
@needs_redis
@pytest.mark.parametrize("compat", COMPAT)
def test_records_quick_prints_its_json(compat: tuple[str, ...]) -> None:
    result = run_benchmark("-m", "benchmarks.records", *compat)

    assert result["benchmark"] == "records"
    assert "redis-benchmark" in result["workload"] and "-P 16" in result["workload"]
    assert (result["target"], result["goal"]) == (50_000, 200_000)
    # Every command the server ran is one record, with nothing lost: at any speed.
    assert result["lost"] == 0
    assert result["records"] == result["server_commands"] >= result["requests"]
    assert result["ok"] is True
    assert result["compat"] == sorted(compat[1].split(",") if compat else [])
    assert any(reason.startswith("BPF ring buffer: off") for reason in result["variant"]) == (
        "perfbuf" in result["compat"]
    )
    assert result["records_per_s"] > 0 and result["events_per_s"] > 0
    assert result["pipeline_records_per_s"] > 0
    assert len(result["profile_top10"]) == 10
    assert all(row["own_s"] >= 0 and row["calls"] > 0 for row in result["profile_top10"])


def test_saved_events_are_private_and_replay(tmp_path: Path) -> None:
    """``--save-events`` keeps payloads: the file is mode 0600."""
    path = tmp_path / "events.pickle"
    save_events([Socket(1, 3).event(EventType.DATA, data=b"*1\r\n$4\r\nPING\r\n")], str(path))

    assert stat.S_IMODE(path.stat().st_mode) == PRIVATE_MODE
    assert replay_file(str(path), runs=1)["events"] == 1

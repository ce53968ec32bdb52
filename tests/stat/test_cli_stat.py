"""``libtrace stat --from FILE``: the same records as ``libtrace pcap``, grouped; bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from libtrace.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "libtrace.cli"]
FIXTURES = sorted((ROOT / "fixtures").glob("*/*.pcap*"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def stat(*args: str) -> dict[str, Any]:
    done = run("stat", "--json", *args)
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()  # one document
    doc: dict[str, Any] = json.loads(line)
    return doc


def pcap_records(path: Path) -> list[dict[str, Any]]:
    done = run("pcap", "--json", str(path))
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def nearest_rank(values: list[int], p: int) -> int:
    ordered = sorted(values)
    return ordered[max(1, -(-p * len(ordered) // 100)) - 1]


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
def test_per_protocol_numbers_agree_with_the_pcap_records(path: Path) -> None:
    records = pcap_records(path)
    doc = stat("--from", str(path), "--by", "protocol")

    assert doc["type"] == "stat" and doc["source"] == str(path) and doc["by"] == ["protocol"]
    assert doc["records"] == len(records) and doc["lost_events"] is None
    for row in doc["rows"]:
        mine = [r for r in records if r["protocol"] == row["protocol"]]
        latencies = [r["latency_ns"] for r in mine if r["latency_ns"] is not None]
        statuses = Counter(r["status"] for r in mine)
        assert row["count"] == len(mine)
        assert row["client_errors"] == statuses["client_error"]
        assert row["server_errors"] == statuses["server_error"]
        assert row["timeouts"] == statuses["timeout"]
        assert row["latencies"] == len(latencies)
        assert row["max_ns"] == (max(latencies) if latencies else None)
        assert row["p50_ns"] == (nearest_rank(latencies, 50) if latencies else None)
        assert row["p99_ns"] == (nearest_rank(latencies, 99) if latencies else None)
    assert sum(row["count"] for row in doc["rows"]) == len(records)
    span = (max(r["ts_ns"] for r in records) - min(r["ts_ns"] for r in records)) / 1e9
    assert doc["elapsed_s"] == (span or None)


def test_redis_commands_agree_with_the_pcap_records() -> None:
    path = ROOT / "fixtures/redis/redis.pcap"
    expected = Counter(r["request"]["command"] for r in pcap_records(path))
    doc = stat("--from", str(path))

    assert {row["key"]: row["count"] for row in doc["rows"]} == expected
    assert all(row["protocol"] == "redis" for row in doc["rows"])
    counts = [row["count"] for row in doc["rows"]]
    assert counts == sorted(counts, reverse=True)  # --sort count, the default


def test_the_json_document_has_its_documented_keys() -> None:
    doc = stat("--from", str(ROOT / "fixtures/http1/nginx.pcap"))
    assert list(doc) == ["type", "source", "by", "sort", "elapsed_s", "records", "groups",
                         "lost_events", "rows"]  # fmt: skip
    assert list(doc["rows"][0]) == [
        "protocol", "key", "count", "rate", "errors", "client_errors", "server_errors",
        "timeouts", "bytes", "latencies", "p50_ns", "p90_ns", "p99_ns", "max_ns", "exact"]
    keys = {row["key"] for row in doc["rows"]}
    assert "GET /index.html" in keys and "GET /missing" in keys


def test_sort_top_and_slow() -> None:
    path = ROOT / "fixtures/kafka/tansu.pcap"
    records = pcap_records(path)
    by_p99 = stat("--from", str(path), "--sort", "p99")["rows"]
    p99s = [row["p99_ns"] for row in by_p99 if row["p99_ns"] is not None]
    assert p99s == sorted(p99s, reverse=True) and by_p99[-1]["p99_ns"] is None

    top = stat("--from", str(path), "--sort", "p99", "--top", "2")
    assert top["rows"] == by_p99[:2] and top["groups"] == len(by_p99)

    slow = stat("--from", str(path), "--slow", "1")  # one millisecond
    expected = [r for r in records if r["latency_ns"] is not None and r["latency_ns"] >= 1e6]
    assert 0 < slow["records"] == len(expected) < len(records)
    assert all(row["p50_ns"] >= 1_000_000 for row in slow["rows"])


def test_min_size_keeps_the_records_at_least_that_large() -> None:
    path = str(ROOT / "fixtures/redis/redis.pcap")
    # A group of one record has that record's bytes.
    single = {row["key"]: row["bytes"] for row in stat("--from", path)["rows"]
              if row["count"] == 1}  # fmt: skip
    threshold = sorted(single.values())[len(single) // 2]
    kept = {row["key"] for row in stat("--from", path, "--min-size", str(threshold))["rows"]}
    assert {key for key, size in single.items() if size >= threshold} <= kept
    assert not {key for key, size in single.items() if size < threshold} & kept
    assert stat("--from", path, "--min-size", "1000000")["rows"] == []


def test_pcap_takes_the_same_filters_and_says_how_many_it_showed() -> None:
    path = ROOT / "fixtures/http1/nginx.pcap"
    records = pcap_records(path)

    def pcap(*filters: str) -> tuple[list[dict[str, Any]], str]:
        done = run("pcap", "--json", str(path), *filters)
        assert done.returncode == 0, done.stderr
        return [json.loads(line) for line in done.stdout.splitlines()], done.stderr

    slow, said = pcap("--slow", "0.5")
    assert slow == [r for r in records if r["latency_ns"] is not None
                    and r["latency_ns"] >= 500_000]  # fmt: skip
    assert 0 < len(slow) < len(records) and f"; {len(slow)} shown (--slow, --min-size)" in said
    # The wire sizes are not in the JSON: stat, with the same filter, counts the same.
    for threshold in ("300", "600", "1000"):
        big, _ = pcap("--min-size", threshold)
        assert len(big) == stat("--from", str(path), "--min-size", threshold)["records"]
        assert all(record in records for record in big)
    assert "shown" not in run("pcap", str(path)).stdout  # no filter, no such words


def test_the_table_shows_each_group_and_a_caption() -> None:
    done = run("stat", "--from", str(ROOT / "fixtures/redis/redis.pcap"), "--top", "3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["protocol", "key", "count", "rate/s", "errors", "p50", "ms",
                                "p90", "p99", "max", "bytes"]  # fmt: skip
    rows = [line.split() for line in lines[2:-1]]
    assert [row[1] for row in rows][:1] == ["GET"] and len(rows) == 3
    assert lines[-1].startswith("12 records over ") and "top 3 shown" in lines[-1]


@pytest.mark.parametrize(("args", "message"), [
    (["stat", "--from", "/nonexistent.pcap"], "/nonexistent.pcap"),
    (["stat", "--from", str(ROOT / "README.md")], "README.md"),
    (["stat", "--by", "protocol,nope"], "nope"),
    (["stat", "--top", "0"], "must be 1 or more"),
    (["stat", "--slow", "-1"], "must be 0 or more"),
    (["stat", "--min-size", "lots"], "not a number of bytes"),
    (["stat", "--sort", "speed"], "invalid choice"),
    (["stat", "--from", "x.pcap", "--pid", "1", "--no-go-tls"],
     "--pid, --no-go-tls: only for a live"),
    (["stat", "--from", "x.pcap", "--by", "process,key"], "--by process: only for a live"),
    (["trace", "--slow", "10"], "--slow acts only with --records"),
    (["trace", "--min-size", "10", "--protocol", "redis"],
     "--protocol, --min-size act only with --records"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = run(*args)
    assert done.returncode == ExitCode.USAGE, done.stderr
    lines = done.stderr.strip().splitlines()
    assert message in lines[-1] and "Traceback" not in done.stderr
    assert lines[-1].startswith(("libtrace: error:", "libtrace stat: error:"))
    if "--from" in args and "--json" not in args:
        assert done.stdout == ""

"""The comparison itself, on real records: it agrees on equal multisets and fails on one change.

The records come from a golden pcap (``fixtures/redis/redis.pcap``) through
``libtrace pcap``'s analyzer; the "traced" side is those records labelled
client and server, as a trace of both ends yields them.  No kernel needed.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from libtrace.check import (
    CheckResult,
    Difference,
    compare_sides,
    protocol_key,
)
from libtrace.check._table import render, rows
from libtrace.errors import ExitCode
from libtrace.pcap import analyze

ROOT = Path(__file__).resolve().parents[2]
PCAP = ROOT / "fixtures" / "redis" / "redis.pcap"


@pytest.fixture(scope="module")
def wire() -> list[dict[str, Any]]:
    return [r.to_json() for r in analyze(str(PCAP))]


def traced_from(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Both ends' records of a trace that saw exactly the wire, with what a trace adds."""
    out = []
    for side in ("client", "server"):
        for record in records:
            live = copy.deepcopy(record)
            live.update(side=side, pid=1, comm="peer", tls=False, container=None)
            # Other clocks: the comparison must not care.
            live.update(latency_ns=(record["latency_ns"] or 0) + 1, ts_ns=record["ts_ns"] + 7)
            out.append(live)
    return out


def result_of(sides: dict[str, Difference], pcap_records: int, lost: int = 0,
              pipeline: dict[str, int] | None = None) -> CheckResult:  # fmt: skip
    return CheckResult(
        scenario="redis", backend="process", server="127.0.0.1:16379", sides=sides,
        pcap_records=pcap_records, traced_records={"client": 0, "server": 0}, lost=lost,
        events=0, pipeline=pipeline or {}, containers={"client": [None], "server": [None]},
        service_container=None,
    )  # fmt: skip


def test_timing_client_port_and_live_fields_are_not_compared(wire: list[dict[str, Any]]) -> None:
    record = wire[0]
    other = {**record, "ts_ns": 1, "latency_ns": 2, "client": "10.0.0.1:1", "side": "server",
             "pid": 9, "container": {"id": "x"}}  # fmt: skip
    assert protocol_key(other) == protocol_key(record)
    changed = copy.deepcopy(record)
    changed["request"]["args"] = ["other"]
    assert protocol_key(changed) != protocol_key(record)


def test_equal_multisets_agree_on_each_side(wire: list[dict[str, Any]]) -> None:
    sides = compare_sides(traced_from(wire), wire)

    assert set(sides) == {"client", "server"}
    assert all(diff.agrees and sum(diff.matched.values()) == len(wire) for diff in sides.values())
    result = result_of(sides, len(wire), pipeline={"events": 40})
    assert result.ok and result.exit_code == ExitCode.OK
    console = Console(record=True, width=200)
    render(result, console)
    assert "pipeline:" not in console.export_text()  # agreeing: nothing to explain


def test_one_altered_pcap_record_is_reported_on_both_sides_and_exits_1(
    wire: list[dict[str, Any]],
) -> None:
    altered = copy.deepcopy(wire)
    victim = next(r for r in altered if r["request"] and r["request"]["command"] == "GET")
    victim["response"]["value"] = "tampered"

    sides = compare_sides(traced_from(wire), altered)
    result = result_of(sides, len(altered), pipeline={"events": 40, "gaps": 1, "desyncs": 0})

    assert not result.agrees and result.exit_code == ExitCode.FAILED
    for diff in sides.values():
        assert sum(diff.matched.values()) == len(wire) - 1
        assert list(diff.only_right) == [protocol_key(victim)]
        (only_trace,) = diff.only_left
        assert '"tampered"' not in only_trace and protocol_key(victim) != only_trace
    report = result.to_json()
    assert report["ok"] is False
    assert report["sides"]["server"]["only_in_pcap"][0]["record"]["response"]["value"] == "tampered"
    # The table keeps the two differing records on rows of their own, marked.
    assert sum(not agrees for *_, agrees in rows(result)) == 2
    console = Console(record=True, width=200)
    render(result, console)
    text = console.export_text()
    assert "verdict: DIFFER" in text and text.count("≠") == 2
    # A difference shows the pipeline's counters that are not zero: where it may come from.
    assert "pipeline: events 40, gaps 1\n" in text
    # On an 80-column terminal every count column keeps its header and its numbers.
    narrow = Console(record=True, width=80)
    render(result, narrow)
    lines = narrow.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    header = next(line for line in lines if "┃" in line and "pcap" in line)
    assert "trace client" in header and "trace server" in header
    assert sum(bool(re.search(r"│\s+\d+\s+│\s+\d+\s+│\s+\d+\s+│", line)) for line in lines) >= 2


def test_a_record_missing_from_one_side_only_is_a_difference(wire: list[dict[str, Any]]) -> None:
    traced = traced_from(wire)
    del traced[len(wire)]  # the server side's first record

    sides = compare_sides(traced, wire)

    assert sides["client"].agrees
    assert not sides["server"].agrees and sum(sides["server"].only_right.values()) == 1


def test_multisets_count_repeats(wire: list[dict[str, Any]]) -> None:
    doubled = traced_from(wire + wire[:1])
    diff = compare_sides(doubled, wire)["client"]

    assert diff.only_left == Counter({protocol_key(wire[0]): 1}) and not diff.only_right


def test_lost_events_or_wrong_containers_fail_the_verdict(wire: list[dict[str, Any]]) -> None:
    sides = compare_sides(traced_from(wire), wire)

    assert result_of(sides, len(wire), lost=1).exit_code == ExitCode.FAILED
    wrong = result_of(sides, len(wire))
    wrong.containers["server"] = [{"id": "abc", "name": "other", "image": None}]
    assert not wrong.attribution_ok and not wrong.ok
    assert not result_of({}, 0).agrees, "no traffic on the wire is no agreement"

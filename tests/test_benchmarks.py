"""Smoke runs of benchmarks/: each prints its JSON, with sane, positive figures.

These never assert a timing target (a loaded machine must not fail the suite):
only the shape of the output and the accounting that holds at any speed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: A --quick run takes a few seconds; this only stops a hung one.
RUN_TIMEOUT_S = 180
#: Every old-kernel path at once, as a user of an old kernel would get.
ALL_COMPAT = "perfbuf,probe-read,no-btf"
#: benchmarks/overhead.py's --quick requests per test (SET and GET).
QUICK_REQUESTS = 2_000
COMPAT = [pytest.param((), id="default"), pytest.param(("--compat", ALL_COMPAT), id="compat")]

needs_redis = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("redis-server", "redis-benchmark", "redis-cli")),
    reason="needs redis-server, redis-benchmark and redis-cli (scripts/install-deps.sh)",
)
needs_cc = pytest.mark.skipif(
    not (shutil.which("cc") or shutil.which("clang")), reason="needs a C compiler (cc or clang)"
)


def run_benchmark(*argv: str) -> dict[str, Any]:
    """Run a benchmark from the repository root; its stdout is one JSON object."""
    done = subprocess.run(
        [sys.executable, *argv, "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.root
@pytest.mark.bpf
@needs_redis
@pytest.mark.parametrize("compat", COMPAT)
def test_overhead_quick_prints_its_json(compat: tuple[str, ...]) -> None:
    result = run_benchmark("-m", "benchmarks.overhead", "--records", *compat)

    assert result["benchmark"] == "overhead"
    assert "redis-benchmark" in result["workload"]
    assert len(result["untraced_rps"]) == len(result["traced_rps"]) >= 1
    assert all(rps > 0 for rps in result["untraced_rps"] + result["traced_rps"])
    assert result["ratio_median"] > 0
    assert (result["target"], result["goal"]) == (0.90, 0.95)
    # Both ends of every request are traced: about four data events each.
    assert result["events"] > 0 and result["events_per_request"] >= 2
    # The tracer drains the buffer on close, and a quick run fits in it.
    assert result["lost"] == 0
    assert sorted(result["compat"]) == sorted(compat[1].split(",") if compat else [])
    # The accounting against the server's own counters (--quick turns the ledger
    # on): every byte it read and wrote is in its traced events, every command
    # it ran is one of its records.
    for mode in ("events", "records"):
        ledger = result["modes"][mode]["ledger"]
        assert result["modes"][mode]["lost"] == 0
        assert ledger["traced_read_bytes"] == ledger["server_read_bytes"] > 0, (mode, ledger)
        assert ledger["traced_written_bytes"] == ledger["server_written_bytes"] > 0, (mode, ledger)
        assert ledger["server_commands"] >= 2 * QUICK_REQUESTS
    records = result["modes"]["records"]["ledger"]
    assert records["server_records"] == records["server_commands"], records
    # The busy loop beside the untraced workload burned about the records
    # consumer's CPU share (some, whatever the machine: it ran while the workload did).
    busy = result["modes"]["busy"]
    assert busy["ratio_median"] > 0 and busy["tracer_cores"] > 0, busy
    assert "events" not in busy  # nothing was traced


@pytest.mark.root
@pytest.mark.bpf
def test_the_empty_programs_floor_is_charged_per_syscall() -> None:
    # The overhead benchmark's floor: empty programs on read's and write's exits
    # are charged some time for every read and write of a file copy.
    from benchmarks._bpf_floor import empty_program_ns
    from benchmarks._bpf_stats import bpf_stats

    count = 20_000

    def copy() -> None:
        subprocess.run(["dd", "if=/dev/zero", "of=/dev/null", "bs=64", f"count={count}"],
                       check=True, capture_output=True)  # fmt: skip

    with bpf_stats() as on:
        assert on
        floor = empty_program_ns(copy, 2 * count)
    assert floor is not None and floor > 0


@pytest.mark.root
@pytest.mark.bpf
@needs_cc
@pytest.mark.parametrize(
    "options",
    [*COMPAT, pytest.param(("--per-call", "1"), id="write")],
)
def test_drain_quick_prints_its_json(options: tuple[str, ...]) -> None:
    # By default the writers send 8 chunks per sendmmsg() (corked): the programs
    # emit each message as an event, so the accounting is the same as with write().
    from benchmarks.drain import DEFAULT_PER_CALL, DEFAULT_WRITERS

    result = run_benchmark(str(ROOT / "benchmarks" / "drain.py"), *options)
    given = dict(zip(options[::2], options[1::2], strict=True))
    per_call = int(given.get("--per-call", DEFAULT_PER_CALL))

    assert result["benchmark"] == "drain"
    assert result["per_call"] == per_call
    assert per_call == 1 or f"sendmmsg() of {per_call} messages" in result["workload"]
    assert result["steps"], result["limit"]
    for step in result["steps"]:
        assert step["target_eps"] > 0 and step["offered_eps"] > 0
        assert step["delivered_eps"] > 0 and step["writes"] > 0
        # One event per write(), each delivered or counted lost: at any speed.
        assert step["events"] + step["lost"] == step["writes"], step
    backlog = result["backlog"]
    assert backlog["events"] + backlog["lost"] == backlog["writes"] > 0, backlog
    assert backlog["eps"] > 0 and backlog["cpu_us_per_event"] > 0
    # The best delivered rate of the steps that kept up (lost nothing, delivered every
    # write), 0 when none did: whatever the machine's speed, it is that figure.
    kept_up = [step for step in result["steps"] if step["ok"]]
    assert all(step["lost"] == 0 and step["events"] >= step["writes"] for step in kept_up)
    assert result["max_zero_loss_eps"] == max(
        (step["delivered_eps"] for step in kept_up), default=0
    )
    assert result["peak_rss_mb"] > 0
    assert result["decode_us_per_event"] > 0
    assert result["target_eps"] == 1_000_000
    assert result["writers"] == DEFAULT_WRITERS
    assert isinstance(result["limit"], str) and result["limit"]
    compat = given.get("--compat")
    assert sorted(result["compat"]) == sorted(compat.split(",") if compat else [])

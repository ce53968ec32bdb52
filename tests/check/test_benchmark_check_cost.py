"""Smoke run of benchmarks/check_cost.py: its JSON, for one cheap scenario."""

from __future__ import annotations

import pytest

from ..test_benchmarks import run_benchmark


@pytest.mark.root
@pytest.mark.bpf
def test_check_cost_quick_prints_seconds_per_scenario() -> None:
    result = run_benchmark("-m", "benchmarks.check_cost")

    assert result["benchmark"] == "check_cost" and result["scenarios"] == ["dubbo"]
    dubbo = result["results"]["process"]["dubbo"]
    assert dubbo["ok"] is True and dubbo["lost"] == 0 and dubbo["records"] > 0
    assert 0 < dubbo["start_s"] < dubbo["seconds"] <= dubbo["max_seconds"]
    assert result["total_seconds_per_backend"]["process"] == dubbo["seconds"]

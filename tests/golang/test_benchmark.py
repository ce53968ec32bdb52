"""Smoke run of benchmarks/go_inspect.py (shape only, never a timing target)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import go_binary, go_versions

pytestmark = pytest.mark.go_toolchain

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_quick() -> None:
    binary = go_binary("https_server", go_versions()[-1], stripped=False)
    done = subprocess.run(
        [sys.executable, "benchmarks/go_inspect.py", str(binary), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["benchmark"] == "go_inspect"
    (row,) = result["binaries"]
    assert row["median_ms"] > 0 and row["peak_rss_mb"] > 0
    assert row["offsets_source"] == "dwarf"

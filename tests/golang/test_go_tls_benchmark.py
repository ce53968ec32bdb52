"""Smoke run of benchmarks/go_tls_overhead.py (shape only, never a timing target)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.bpf, pytest.mark.go_toolchain]


def test_go_tls_overhead_quick() -> None:
    out = subprocess.run(
        [sys.executable, "benchmarks/go_tls_overhead.py", "--quick"],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout
    result = json.loads(out)
    assert result["benchmark"] == "go_tls_overhead"
    assert result["attached_both"] is True
    assert result["lost"] == 0
    # Each request is read and written once on each side: at least 4 TLS events.
    assert result["tls_events_per_request"] >= 4
    assert result["untraced_rps"] > 0 and result["traced_rps"] > 0
    # The kernel's statistics count the uprobe hits: a record write per side and
    # Reads between them (an entry and a RET each): six at the least (eight here).
    assert result["uprobe_hits_per_request"] >= 6
    assert result["bpf_ns_per_hit"] > 0
    # Split by program (bpftool shows the programs' whole names from their BTF):
    # under the register ABI Read's plaintext is taken at its memmove call, so
    # its RETs are not probed; each copy follows an entry of its Read.
    by_program = result["hits_per_request_by_program"]
    assert sum(by_program.values()) == pytest.approx(result["uprobe_hits_per_request"], abs=0.05)
    assert by_program["lt_go_tls_read_return"] == 0
    assert 0 < by_program["lt_go_tls_read_copy"] <= by_program["lt_go_tls_read_enter"]
    assert by_program["lt_go_tls_write_record"] > 0
    # What each hit costs, by program: a program that ran has a time per hit, one
    # that never ran (the RET probe) has none.
    ns_by_program = result["bpf_ns_per_hit_by_program"]
    assert ns_by_program["lt_go_tls_read_return"] is None
    for name in ("lt_go_tls_read_enter", "lt_go_tls_read_copy", "lt_go_tls_write_record"):
        assert ns_by_program[name] > 0, ns_by_program
    # The trap alone (a tracefs uprobe, no BPF) costs something on either kind of
    # instruction, and its event is gone.
    assert result["uprobe_trap_us"] > 0
    assert result["uprobe_trap_emulated_us"] > 0
    assert "libtrace_bench" not in Path("/sys/kernel/tracing/uprobe_events").read_text()

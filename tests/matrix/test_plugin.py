"""The pytest plugin files tests under their matrix columns, incrementally."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import libtrace

SAMPLE = textwrap.dedent("""
    import os, pytest

    @pytest.mark.capability("attach")
    def test_ok():
        pass

    @pytest.mark.capability("attach")
    def test_ok_too():
        pass

    @pytest.mark.capability("tcp_capture")
    def test_broken():
        assert 1 + 1 == 3, "arithmetic"

    @pytest.mark.capability("buffer")
    def test_refused():
        print("loading the tracer")
        raise OSError("load BPF object tracer failed: Permission denied "
                      "(program on_sendmsg: 12: (61) r1 = *(u32 *)(r2 +0) | R2 invalid mem access)")

    @pytest.mark.capability("core_identity")
    def test_needs_btf():
        pytest.skip("the kernel has no BTF")

    @pytest.fixture(params=[
        "native", pytest.param("perfbuf", marks=pytest.mark.variant_capability("compat_perfbuf"))])
    def variant(request):
        return request.param

    @pytest.mark.capability("udp_capture")
    def test_variant(variant):
        # the report must already be on disk while the run goes on
        report = json.loads(open(os.environ["REPORT"]).read())
        assert "attach" in report

    @pytest.mark.capability("payload_cap")
    def test_dies():
        os._exit(3)

    import json
""")


def test_columns_verdicts_and_details(tmp_path):
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    report = tmp_path / "cells.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "libtrace.matrix.plugin",
            "--capability-report",
            str(report),
            "-p",
            "no:cacheprovider",
            str(tmp_path),
            "-o",
            "markers=capability\n variant_capability",
        ],
        capture_output=True,
        text=True,
        env={
            "REPORT": str(report),
            "PATH": "",
            "PYTHONPATH": str(Path(libtrace.__file__).parents[1]),
        },
        cwd=tmp_path,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr  # test_dies killed the run
    cells = json.loads(report.read_text())
    seconds = {name: cell.pop("seconds", None) for name, cell in cells.items()}
    # every column that ran says how long it took; the one that never finished does not
    assert all(isinstance(seconds[name], float) and seconds[name] >= 0
               for name in cells if name != "payload_cap")  # fmt: skip
    assert seconds["payload_cap"] is None
    assert cells["attach"] == {"verdict": "pass", "detail": "2 passed"}
    assert cells["tcp_capture"]["verdict"] == "fail"
    assert "arithmetic" in cells["tcp_capture"]["detail"]
    # the log is the end of the failure's report; no verifier message where no load failed
    assert "assert 1 + 1 == 3" in cells["tcp_capture"]["log"]
    assert "verifier" not in cells["tcp_capture"]
    assert cells["buffer"]["verifier"] == (
        "load BPF object tracer failed: Permission denied "
        "(program on_sendmsg: 12: (61) r1 = *(u32 *)(r2 +0) | R2 invalid mem access)")
    assert "loading the tracer" in cells["buffer"]["log"]  # the captured output is kept
    assert cells["core_identity"] == {"verdict": "skip", "detail": "the kernel has no BTF"}
    assert cells["udp_capture"] == {"verdict": "pass", "detail": "1 passed"}
    assert cells["compat_perfbuf"] == {"verdict": "pass", "detail": "1 passed"}
    # the run died inside this one: it stays pending, for the sweep to judge
    assert cells["payload_cap"]["verdict"] == "pending"

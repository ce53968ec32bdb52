"""The sweep: rows from runs, the plan, and real sweeps over real kernels."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from libtrace.errors import ConfigError
from libtrace.matrix.cli import expand_kernels
from libtrace.matrix.report import REPORT_JSON, CellVerdict
from libtrace.matrix.sweep import (
    SEED_SERIES,
    _row_from_run,
    parse_shard,
    shard_kernels,
    unavailable_rows,
)
from libtrace.vm.kernels import Kernel
from libtrace.vm.qemu import RunResult, Verdict

CLI = [sys.executable, "-m", "libtrace.cli"]
GUEST = Kernel(
    name="debian-6.1",
    release="6.1.0-40-amd64",
    version="6.1.150",
    source="debian:bookworm",
    vmlinuz=Path("/nonexistent"),
    modules=None,
)


def result(verdict: Verdict, *, splats: tuple[str, ...] = (), reason: str = "") -> RunResult:
    return RunResult(
        verdict=verdict,
        exit_code=0 if verdict is Verdict.PASS else None,
        reason=reason,
        boot_s=3.0,
        wall_s=42.0,
        log_tail="last line",
        splats=splats,
    )


def write_cells(run_dir: Path, **cells: str) -> None:
    (run_dir / "cells.json").write_text(
        json.dumps(
            {
                name: {"verdict": verdict, "detail": f"{verdict} here"}
                for name, verdict in cells.items()
            }
        )
    )


def test_a_panic_keeps_the_finished_columns_and_fails_the_rest(tmp_path):
    write_cells(tmp_path, attach="pass", buffer="fail", tcp_capture="pending")
    row = _row_from_run(
        GUEST, result(Verdict.PANIC, reason="Kernel panic - not syncing: x"), tmp_path
    )
    assert row.cells["attach"].verdict is CellVerdict.PASS
    assert row.cells["buffer"].verdict is CellVerdict.FAIL
    assert row.cells["tcp_capture"].verdict is CellVerdict.PANIC
    assert "Kernel panic" in row.cells["tcp_capture"].detail
    assert set(row.cells) == {"attach", "buffer", "tcp_capture"}  # only what was selected
    assert row.log_tail == "last line"  # the console's end, for the page's details


def test_a_cells_seconds_log_and_verifier_message_reach_the_row(tmp_path):
    failed = {"verdict": "fail", "detail": "1 failed: x", "seconds": 2.5,
              "log": "E   BpfError: load BPF object t failed", "verifier": "R2 invalid mem access"}
    (tmp_path / "cells.json").write_text(json.dumps({"attach": failed}))  # fmt: skip
    cell = _row_from_run(GUEST, result(Verdict.FAIL), tmp_path).cells["attach"]
    assert (cell.verdict, cell.seconds, cell.log, cell.verifier) == (
        CellVerdict.FAIL, 2.5, failed["log"], failed["verifier"])  # fmt: skip


def test_a_kernel_log_splat_fails_the_passing_cells(tmp_path):
    write_cells(tmp_path, attach="pass", core_identity="skip")
    row = _row_from_run(
        GUEST, result(Verdict.PASS, splats=("WARNING: CPU: 0 PID: 1 at x",)), tmp_path
    )
    assert row.cells["attach"].verdict is CellVerdict.FAIL
    assert "WARNING: CPU: 0" in row.cells["attach"].detail
    assert row.cells["attach"].log == "WARNING: CPU: 0 PID: 1 at x"
    assert row.cells["core_identity"].verdict is CellVerdict.SKIP


def test_a_kernel_that_rejected_its_own_btf_errs_instead_of_failing(tmp_path):
    write_cells(tmp_path, attach="fail", core_identity="skip")
    broken = RunResult(verdict=Verdict.FAIL, exit_code=1, reason="exit code 1", boot_s=3.0,
                       wall_s=42.0, log_tail="", splats=(),
                       btf_broken=("BPF:Invalid btf_info kind_flag",))  # fmt: skip
    row = _row_from_run(GUEST, broken, tmp_path)
    assert row.cells["attach"].verdict is CellVerdict.ERROR
    assert "its own BTF at boot (BPF:Invalid btf_info kind_flag)" in row.cells["attach"].detail
    assert row.cells["core_identity"].verdict is CellVerdict.SKIP


def test_no_results_at_all_is_an_error_not_a_pass(tmp_path):
    row = _row_from_run(GUEST, result(Verdict.FAIL), tmp_path)
    assert {c.verdict for c in row.cells.values()} == {CellVerdict.ERROR}


def test_unavailable_seed_series_get_rows_with_a_prediction():
    rows = unavailable_rows({(5, 10)})
    assert len(rows) == len(SEED_SERIES) - 1
    names = [r.name for r in rows]
    assert "4.14" in names and "5.16" in names and "5.10" not in names
    row_414 = rows[names.index("4.14")]
    assert not row_414.available
    assert {c.verdict for c in row_414.cells.values()} == {CellVerdict.NOT_AVAILABLE}
    assert "predicted to load the perfbuf+probe-read+no-btf object" in row_414.note
    assert "ringbuf+probe-read-user+btf" in rows[names.index("5.16")].note
    # the prediction as data too, for the page's and the picture's prediction marks
    assert row_414.predicted is not None and row_414.predicted["loads"] is True
    assert row_414.predicted["variant"] == "perfbuf+probe-read+no-btf"


def test_kernel_specs_and_shards():
    assert expand_kernels("default") == ("host", "debian-5.10", "debian-6.1", "debian-6.12")
    assert expand_kernels("host,host,debian-6.1") == ("host", "debian-6.1")
    with pytest.raises(ConfigError):
        expand_kernels("9.99.*")
    assert shard_kernels(("a", "b", "c", "d", "e"), (2, 2)) == ["b", "d"]
    assert parse_shard("3/4") == (3, 4)
    with pytest.raises(ConfigError):
        parse_shard("x")


def test_emit_ci_matrix_prints_the_kernel_list():
    proc = subprocess.run(
        [*CLI, "matrix", "--emit-ci-matrix"], capture_output=True, text=True, check=True
    )
    assert json.loads(proc.stdout) == {
        "kernel": ["host", "debian-5.10", "debian-6.1", "debian-6.12"]
    }


#: A quick selection of kernel-level tests for sweeps inside the test suite.
QUICK = "native and (attach or tcp_streams)"


@pytest.mark.root
@pytest.mark.bpf
@pytest.mark.qemu
def test_a_real_sweep_over_a_guest_kernel_and_a_corrupt_deb(tmp_path):
    """The VM path end to end: a Debian guest runs real tests; a broken kernel errs alone."""
    corrupt = tmp_path / "linux-image-broken_1.0_amd64.deb"
    corrupt.write_bytes(b"!<arch>\nnot really a deb")
    report = tmp_path / "report"
    proc = subprocess.run(
        [
            *CLI,
            "matrix",
            "--kernels",
            f"debian-6.1,{corrupt}",
            "--report",
            str(report),
            "-k",
            QUICK,
            "--timeout",
            "400",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    data = json.loads((report / REPORT_JSON).read_text())
    rows = {k["name"]: k for k in data["kernels"]}
    guest = rows["debian-6.1"]
    assert guest["available"] and guest["boot_s"] and guest["version"].startswith("6.1")
    assert guest["cells"]["attach"]["verdict"] == "pass", guest["cells"]["attach"]
    assert guest["cells"]["tcp_capture"]["verdict"] == "pass", guest["cells"]["tcp_capture"]
    assert (report / "junit-debian-6.1.xml").exists()
    # The prediction made from the kernel's version and config, beside what ran.
    assert guest["predicted"] == {"variant": "ringbuf+probe-read-user+btf", "loads": True,
                                  "reasons": [], "notes": [], "programs": {}}
    assert guest["variant"] == guest["predicted"]["variant"]
    broken = next(r for name, r in rows.items() if "broken" in name)
    assert {c["verdict"] for c in broken["cells"].values()} == {"error"}
    assert broken["note"]
    assert rows["4.14"]["available"] is False
    for name in ("matrix.md", "matrix.png"):
        assert (report / name).stat().st_size > 0
    assert proc.returncode == 1  # the broken kernel's errors count


@pytest.mark.root
@pytest.mark.bpf
def test_killing_the_sweep_half_way_keeps_finished_rows(tmp_path):
    report = tmp_path / "report"
    proc = subprocess.Popen(
        [
            *CLI,
            "matrix",
            "--kernels",
            "host,debian-6.12",
            "--report",
            str(report),
            "-k",
            QUICK,
            "--jobs",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            try:
                rows = json.loads((report / REPORT_JSON).read_text())["kernels"]
            except (OSError, ValueError):
                rows = []
            if any(r["name"] == "host" for r in rows):
                break
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    rows = {r["name"]: r for r in json.loads((report / REPORT_JSON).read_text())["kernels"]}
    assert rows["host"]["cells"]["attach"]["verdict"] == "pass"
    assert "debian-6.12" not in rows
    assert "4.14" in rows


def sweep_rows(tmp_path: Path, *args: str) -> dict[str, dict]:
    report = tmp_path / "report"
    subprocess.run(
        [*CLI, "matrix", "--report", str(report), "-k", QUICK, *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return {k["name"]: k for k in json.loads((report / REPORT_JSON).read_text())["kernels"]}


@pytest.mark.root
@pytest.mark.bpf
@pytest.mark.qemu
def test_a_panicking_guest_is_a_panic_row_and_the_host_row_still_passes(tmp_path):
    # rdinit=/nonexistent: the kernel finds no init and panics at boot.
    rows = sweep_rows(tmp_path, "--kernels", "host,debian-6.1", "--append", "rdinit=/nonexistent")
    guest = rows["debian-6.1"]["cells"]
    assert {c["verdict"] for c in guest.values()} == {"panic"}
    assert "panic" in guest["attach"]["detail"].lower()
    assert rows["host"]["cells"]["attach"]["verdict"] == "pass"


@pytest.mark.root
@pytest.mark.bpf
@pytest.mark.qemu
def test_a_guest_out_of_time_is_a_timeout_row(tmp_path):
    # Eight seconds boot the guest but do not get its tests done under TCG.
    # (No host row beside it: on a loaded machine the host might need more.)
    rows = sweep_rows(tmp_path, "--kernels", "debian-6.1", "--timeout", "8")
    guest = rows["debian-6.1"]["cells"]
    assert {c["verdict"] for c in guest.values()} == {"timeout"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--kernels", "no-such-kernel"], "is no known kernel"),
        (["--shard", "3/2"], "does not exist"),
        (["--jobs", "0"], "at least 1"),
        (["merge", "/nonexistent"], "cannot read"),
    ],
)
def test_bad_matrix_input_is_one_line_and_exit_2(args, message):
    proc = subprocess.run([*CLI, "matrix", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_row_file_names_never_escape_the_report_directory():
    from libtrace.matrix.sweep import file_name

    assert file_name("debian-6.1") == "debian-6.1"
    for spec in ("/tmp/k/linux-image.deb", "http://127.0.0.1:8000/k.deb", "../../etc"):
        name = file_name(spec)
        assert "/" not in name and not name.startswith(".")
    assert file_name("/a/b") != file_name("/a_b")

"""Kernels supplied as a user would — a .deb of a suite outside the defaults,
the same .deb behind a URL, and an extracted directory — boot in the matrix
and get real verdicts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.prefetch import POINT_RELEASE, point_release_deb
from tests.serving import served

CLI = [sys.executable, "-m", "libtrace.cli"]
QUICK = "native and (attach or tcp_streams)"


@pytest.fixture(scope="module")
def deb() -> Path:
    """The point release's .deb, downloaded once into the cache (see tests/prefetch.py)."""
    return point_release_deb(progress=print)


@pytest.mark.root
@pytest.mark.bpf
@pytest.mark.qemu
def test_a_deb_a_url_and_a_directory_each_get_verdicts(deb, tmp_path):
    directory = tmp_path / "kernel-dir"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(directory)], check=True)
    directory_served = tmp_path / "served"
    directory_served.mkdir()
    shutil.copy(deb, directory_served / deb.name)
    report = tmp_path / "report"
    with served(directory_served) as base:
        url = f"{base}/{deb.name}"
        subprocess.run(
            [*CLI, "matrix", "--kernels", f"{deb},{url},{directory}", "--report", str(report),
             "-k", QUICK, "--jobs", "2"],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
    rows = {k["name"]: k for k in json.loads((report / "matrix.json").read_text())["kernels"]}
    for spec in (str(deb), url, str(directory)):
        row = rows[spec]
        assert row["version"].startswith(POINT_RELEASE), row
        assert row["cells"]["attach"]["verdict"] == "pass", (spec, row["cells"])
        assert row["cells"]["tcp_capture"]["verdict"] == "pass", (spec, row["cells"])
        assert row["predicted"]["loads"] is True

"""Kernels supplied as a user would — a .deb of a suite outside the defaults,
the same .deb behind a URL, and an extracted directory — boot in the matrix
and get real verdicts."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.prefetch import POINT_RELEASE, point_release_deb

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
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(deb, served / deb.name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{deb.name}"
    report = tmp_path / "report"
    try:
        subprocess.run(
            [
                *CLI,
                "matrix",
                "--kernels",
                f"{deb},{url},{directory}",
                "--report",
                str(report),
                "-k",
                QUICK,
                "--jobs",
                "2",
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        server.shutdown()
    rows = {k["name"]: k for k in json.loads((report / "matrix.json").read_text())["kernels"]}
    for spec in (str(deb), url, str(directory)):
        row = rows[spec]
        assert row["version"].startswith(POINT_RELEASE), row
        assert row["cells"]["attach"]["verdict"] == "pass", (spec, row["cells"])
        assert row["cells"]["tcp_capture"]["verdict"] == "pass", (spec, row["cells"])
        assert row["predicted"]["loads"] is True

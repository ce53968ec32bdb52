"""``libtrace trace`` over Go TLS: events flagged ``"tls": true`` and HTTP records from plaintext.

A Go HTTPS server runs before the CLI starts (attached at once); curl talks
HTTP/1.1 and HTTP/2 to it.  The socket itself carries only ciphertext, so
every HTTP record here can only have come from the uprobes.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from typing import Any

import pytest

from tests.golang.conftest import go_binary, go_versions
from tests.golang.test_tls_capture import go_server
from tests.tracing import wait_until_tracing
from tests.waiting import wait_for

pytestmark = [pytest.mark.root, pytest.mark.bpf, pytest.mark.go_toolchain]

CLI = [sys.executable, "-m", "libtrace.cli", "trace", "--json"]


def server_connections(port: int) -> list[str]:
    """The connections of the server on ``port`` that its process has not closed yet."""
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", "state", "close-wait", f"sport = :{port}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return out.splitlines()


def run_cli(port: int, *extra: str) -> tuple[list[dict[str, Any]], str]:
    """Trace the server's port while curl makes two HTTP/1.1 and two HTTP/2 requests:
    (the JSON lines, stderr)."""
    proc = subprocess.Popen(
        [*CLI, "--port", str(port), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        started = wait_until_tracing(proc.stderr)
        url = f"https://127.0.0.1:{port}"
        for flags in (["--http1.1"], ["--http2"]):
            subprocess.run(["curl", "-sk", *flags, f"{url}/one", f"{url}/two"], check=True,
                           capture_output=True, timeout=20)
        # The server has closed both connections: every event of theirs is in the buffer,
        # and the CLI drains the buffer when it stops.
        wait_for(lambda: not server_connections(port), "the server closed its connections")
        proc.send_signal(2)  # SIGINT: stop now, print the stats line
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # failed before stopping it: leave no tracer behind
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()], started + err


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    binary = go_binary("https_server", go_versions()[-1], stripped=True)
    with go_server(binary, tmp_path_factory.mktemp("keys") / "keys") as proc:
        yield proc


def test_tls_events_carry_tls_true_and_plaintext(server):
    lines, err = run_cli(server.port)
    # Attaching is said without -v: the server's pid, its Go version once ("go1.").
    assert re.search(rf"Go TLS: attached to pid {server.pid} \(go1\.\d+", err), err
    assert "gogo" not in err, err
    assert re.search(r"Go TLS: attached to [1-9]\d* running Go", err), err
    tls = [e for e in lines if e.get("tls")]
    assert tls, "no TLS event"
    assert {e["syscall"] for e in tls} == {"go_tls_read", "go_tls_write"}
    assert all("tls" in e["flags"] and e["pid"] == server.pid for e in tls)
    plain = b"".join(base64.b64decode(e["data_b64"]) for e in tls)
    assert b"GET /one HTTP/1.1" in plain
    # The same socket's own bytes are ciphertext, and flagged as such.
    assert any(e.get("tls") is False and e.get("type") == "data" for e in lines)


def test_records_from_go_tls_plaintext(server):
    lines, _ = run_cli(server.port, "--records")
    records = [r for r in lines if r.get("type") == "record"]
    assert all(r["request"] and r["response"] for r in records), records
    got = sorted(
        (r["protocol"], r["request"]["method"], r["request"]["path"], r["response"]["status"])
        for r in records
    )
    assert got == [
        ("http1", "GET", "/one", 200), ("http1", "GET", "/two", 200),
        ("http2", "GET", "/one", 200), ("http2", "GET", "/two", 200),
    ]
    assert all(r["tls"] is True and r["side"] == "server" and r["pid"] == server.pid
               for r in records)
    assert lines[-1]["type"] == "stats" and lines[-1]["records"] == 4


def test_no_go_tls_gives_no_plaintext_records(server):
    lines, err = run_cli(server.port, "--records", "--no-go-tls")
    assert "Go TLS" not in err
    assert [r for r in lines if r.get("type") == "record"] == []

"""``libtrace stat`` live, on known workloads: a real redis-server driven by redis-cli
with a fixed command mix, and nginx with one path made slow by a proxied upstream
(``tests/peers/slow_upstream.py``: nginx cannot delay a response itself).
``trace --records --slow/--min-size`` run on the same nginx traffic."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from libtrace.services.record import _process, _wait_port

from ..records._live import env, redis_server
from ..services.conftest import free_port
from ..tracing import wait_until_tracing

CLI = [sys.executable, "-m", "libtrace.cli"]
UPSTREAM = Path(__file__).resolve().parents[1] / "peers" / "slow_upstream.py"
#: The slow path's delay: far above anything else nginx serves here.
DELAY_MS = 300
#: The workload: requests per path kind.
FAST, SLOW, PAGES = 20, 4, 10
#: The static page's size: records of it are the only ones past MIN_SIZE bytes.
PAGE_BYTES, MIN_SIZE = 6000, 3000



def start(*args: str) -> subprocess.Popen[str]:
    """A libtrace command that traces, once its programs are attached (no Go TLS uprobes:
    tests/golang covers them, and they cost seconds at exit)."""
    proc = subprocess.Popen([*CLI, *args, "--no-go-tls"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env())  # fmt: skip
    assert proc.stderr is not None
    try:
        wait_until_tracing(proc.stderr)
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGINT (the trace ends, drains and prints), then its stdout; killed if it hangs."""
    try:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return out


def stopped_all(procs: list[subprocess.Popen[str]]) -> list[str]:
    """Stop every process, even when one fails; their stdouts."""
    outs, failure = [], None
    for proc in procs:
        try:
            outs.append(stop(proc))
        except Exception as exc:  # stop the others first
            failure = failure or exc
    if failure is not None:
        raise failure
    return outs


def rows_of(out: str) -> list[dict[str, Any]]:
    (line,) = out.splitlines()
    doc = json.loads(line)
    assert doc["type"] == "stat" and doc["source"] == "live" and doc["lost_events"] == 0, doc
    rows: list[dict[str, Any]] = doc["rows"]
    return rows


@pytest.mark.root
@pytest.mark.bpf
def test_redis_commands_are_counted_per_command_and_process() -> None:
    port = free_port()
    mix = {"SET": 30, "INCR": 20, "GET": 10}
    with redis_server(port):
        proc = start("stat", "--port", str(port), "--by", "process,key", "--json")
        try:
            for command, count in mix.items():
                args = {"SET": ["k", "v"], "INCR": ["n"], "GET": ["k"]}[command]
                subprocess.run(["redis-cli", "-p", str(port), "-r", str(count), command, *args],
                               stdout=subprocess.DEVNULL, timeout=30, check=True)  # fmt: skip
        finally:
            out = stop(proc)
    counts = {(row["process"], row["key"]): row["count"] for row in rows_of(out)}
    # Both ends run here: redis-cli's records and redis-server's, each of every command.
    for command, count in mix.items():
        assert counts.get(("redis-server", command)) == count, counts
        assert counts.get(("redis-cli", command)) == count, counts
    for row in rows_of(out):
        assert row["errors"] == 0 and row["latencies"] == row["count"]
        assert 0 < row["p50_ns"] <= row["p90_ns"] <= row["p99_ns"] <= row["max_ns"]


def nginx_conf(tmp: Path, port: int, upstream: int) -> Path:
    (tmp / "www").mkdir()
    (tmp / "www" / "page.html").write_text("x" * PAGE_BYTES)
    conf = tmp / "nginx.conf"
    conf.write_text(f"""daemon off; worker_processes 1; pid {tmp}/nginx.pid; user root;
error_log stderr; events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path {tmp}; proxy_temp_path {tmp};
  fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
  server {{ listen 127.0.0.1:{port};
    location /fast/ {{ return 200 "fast\\n"; }}
    location /slow/ {{ proxy_pass http://127.0.0.1:{upstream}; }}
    location / {{ root {tmp}/www; }} }} }}
""")
    return conf


def drive(port: int) -> None:
    """The workload, over one keep-alive connection of this process."""
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    paths = ([f"/fast/{i}" for i in range(FAST)] + [f"/slow/{100 + i}" for i in range(SLOW)]
             + ["/page.html?v=" + str(i) for i in range(PAGES)])  # fmt: skip
    try:
        for path in paths:
            client.request("GET", path)
            response = client.getresponse()
            response.read()
            assert response.status == 200, path
    finally:
        client.close()


@pytest.fixture(scope="module")
def nginx_outputs() -> Iterator[dict[str, str]]:
    """The outputs of four commands that traced the same nginx traffic at once."""
    port, upstream = free_port(), free_port()
    commands = {
        "stat": ["stat", "--port", str(port), "--sort", "p99", "--json"],
        "table": ["stat", "--port", str(port), "--sort", "p99", "--top", "1"],
        "slow": ["trace", "--records", "--json", "--port", str(port), "--slow", str(DELAY_MS)],
        "large": ["trace", "--records", "--json", "--port", str(port), "--min-size",
                  str(MIN_SIZE)],
    }  # fmt: skip
    with (
        tempfile.TemporaryDirectory() as tmp,
        _process([sys.executable, str(UPSTREAM), str(upstream), str(DELAY_MS)]),
        _process(["nginx", "-c", str(nginx_conf(Path(tmp), port, upstream)), "-p", tmp]),
    ):
        _wait_port(upstream)
        _wait_port(port)
        procs: list[subprocess.Popen[str]] = []
        try:
            for args in commands.values():
                procs.append(start(*args))
            drive(port)
        finally:
            outs = stopped_all(procs)
    yield dict(zip(commands, outs, strict=True))


@pytest.mark.root
@pytest.mark.bpf
def test_the_slow_nginx_path_ranks_first_by_p99(nginx_outputs: dict[str, str]) -> None:
    rows = rows_of(nginx_outputs["stat"])
    by_key = {row["key"]: row for row in rows}
    # Each exchange twice: this process is the client, nginx the server.
    assert {key: row["count"] for key, row in by_key.items()} == {
        "GET /fast/{id}": 2 * FAST, "GET /slow/{id}": 2 * SLOW, "GET /page.html": 2 * PAGES}
    assert rows[0]["key"] == "GET /slow/{id}"
    assert rows[0]["p50_ns"] >= DELAY_MS * 1_000_000 > rows[1]["p99_ns"]
    assert all(row["protocol"] == "http1" and row["errors"] == 0 for row in rows)
    assert by_key["GET /page.html"]["bytes"] > 2 * PAGES * PAGE_BYTES


@pytest.mark.root
@pytest.mark.bpf
def test_the_live_table_ends_with_the_top_row(nginx_outputs: dict[str, str]) -> None:
    lines = nginx_outputs["table"].splitlines()
    assert lines[0].split()[:3] == ["protocol", "key", "count"]
    (row,) = lines[2:-1]
    assert row.split()[:4] == ["http1", "GET", "/slow/{id}", str(2 * SLOW)]
    assert "top 1 shown" in lines[-1] and "sorted by p99" in lines[-1]


@pytest.mark.root
@pytest.mark.bpf
def test_trace_records_slow_keeps_only_the_slow_path(nginx_outputs: dict[str, str]) -> None:
    lines = [json.loads(line) for line in nginx_outputs["slow"].splitlines()]
    records, stats = lines[:-1], lines[-1]
    assert stats["type"] == "stats"
    assert sorted(r["request"]["path"] for r in records) == sorted(
        f"/slow/{100 + i}" for i in range(SLOW) for _side in range(2))
    assert all(r["latency_ns"] >= DELAY_MS * 1_000_000 for r in records)


@pytest.mark.root
@pytest.mark.bpf
def test_trace_records_min_size_keeps_only_the_large_page(nginx_outputs: dict[str, str]) -> None:
    records = [json.loads(line) for line in nginx_outputs["large"].splitlines()][:-1]
    assert len(records) == 2 * PAGES
    assert all(r["request"]["path"].startswith("/page.html") for r in records)
    assert all(r["response"]["body_size"] == PAGE_BYTES for r in records)

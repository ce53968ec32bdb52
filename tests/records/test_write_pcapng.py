"""``libtrace trace --records --json --write F``: the pcapng of a live run, read back.

Each of the eight services of :mod:`libtrace.services` (a real server, its
deterministic client traffic) is traced by the CLI with a pid filter on the
server's processes, writing a pcapng.  Then: tshark reads the file with no
error and no warning beyond the gaps libtrace counted; tshark's own records
(the oracle of :mod:`libtrace.pcap.oracle`, decode-as on the service's port)
agree with ``libtrace pcap``'s records of the file; those equal the live
records of the same run (protocol fields and latencies); and every packet's
comment names one of the server's processes.  Then a gap (a small payload
cap) and Go TLS plaintext (HTTP/2, dissected by tshark).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from libtrace.check import free_endpoint, protocol_key
from libtrace.check._traffic import child_env, traffic_argv
from libtrace.pcap import analyze
from libtrace.pcap.oracle import VIEWS, compare
from libtrace.pcap.writer import TLS_PLAINTEXT_PORT
from libtrace.services import SERVICES, start
from libtrace.tracer.events import MAX_PAYLOAD

from ..check.conftest import needs
from ..tracing import tracing_cli
from ._live import redis_server

pytestmark = [pytest.mark.root, pytest.mark.bpf]

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
CLI = [sys.executable, "-m", "libtrace.cli", "trace", "--records", "--json", "--no-go-tls"]
#: What a packet's comment says (``synthesized``: the peer's half of a handshake or close).
COMMENT = re.compile(r"pid \d+ tid \d+ comm .+ fd \d+ syscall [a-z0-9_]+( synthesized)?")
#: A traffic script may take this long (Kafka's consumer polls take seconds).
TRAFFIC_TIMEOUT_S = 180


def traced_write(path: Path, args: list[str], traffic: Callable[[], None],
                 cli: list[str] = CLI) -> tuple[list[dict[str, Any]], dict[str, Any]]:  # fmt: skip
    """Run the CLI with ``--write path`` and ``args`` around ``traffic``: (records, stats)."""
    with tracing_cli([*cli, "--write", str(path), *args], child_env()) as proc:
        traffic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines and lines[-1]["type"] == "stats", out
    return lines[:-1], lines[-1]


def tshark_rows(path: Path, *fields: str, decode_as: tuple[str, ...] = ()) -> list[list[str]]:
    argv = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=|"]
    for rule in decode_as:
        argv += ["-d", rule]
    for name in fields:
        argv += ["-e", name]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines()]


#: tshark's severities (warning, error) and its group of TCP-analysis findings.
WARNING, ERROR, SEQUENCE = "6291456", "8388608", "33554432"


def findings(path: Path, decode_as: tuple[str, ...] = ()) -> set[tuple[str, str, str]]:
    """tshark's expert infos of severity warning or error: (severity, group, message)."""
    argv = ["tshark", "-r", str(path), "-T", "fields", "-e", "_ws.expert.severity",
            "-e", "_ws.expert.group", "-e", "_ws.expert.message", "-E", "occurrence=a",
            "-E", "aggregator=;"]  # fmt: skip
    for rule in decode_as:
        argv += ["-d", rule]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    found = set()
    for line in out.splitlines():
        columns = [column.split(";") for column in line.split("\t")]
        for severity, group, message in zip(*columns, strict=False):
            if severity in (WARNING, ERROR):
                found.add((severity, group, message))
    return found


def decode_as(protocol: str, port: int) -> tuple[str, ...]:
    """tshark's decode-as rules for ``protocol`` on ``port`` (none for Dubbo: no dissector)."""
    view = VIEWS.get(protocol)
    return tuple(f"{t}.port=={port},{view.dissector}" for t in view.transports) if view else ()


def protocol_view(records: list[dict[str, Any]]) -> Counter[tuple[str, object]]:
    """Records by their protocol fields and latency (clocks differ: live ones are monotonic)."""
    return Counter((protocol_key(r), r["latency_ns"]) for r in records)


@pytest.mark.parametrize("name", [pytest.param(n, marks=needs(n)) for n in SERVICES])
def test_the_written_capture_holds_the_live_records(name: str, tmp_path: Path) -> None:
    service = SERVICES[name]
    host, port = free_endpoint(service)
    path = tmp_path / f"{name}.pcapng"
    with start(service, host=host, port=port) as running:
        pids = running.pids()
        argv = traffic_argv(running)
        args = ["--port", str(port), "--payload-cap", str(MAX_PAYLOAD)]
        for pid in pids:
            args += ["--pid", str(pid)]
        live, stats = traced_write(path, args, lambda: subprocess.run(
            argv, env=child_env(), check=True, capture_output=True, timeout=TRAFFIC_TIMEOUT_S))

    server = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    live = [r for r in live if r["server"] == server]
    assert live and {r["protocol"] for r in live} == {service.protocol}
    assert {r["side"] for r in live} == {"server"} and {r["pid"] for r in live} <= set(pids)
    assert stats["lost"] == 0 and stats["written"]["packets"] > 0

    # libtrace pcap of the file: the live run's records
    from_file = [json.loads(json.dumps(r.to_json())) for r in analyze(str(path))]
    from_file = [r for r in from_file if r["server"] == server]
    assert protocol_view(from_file) == protocol_view(live)
    # tshark: its records agree with them (Dubbo 2 has no dissector: none to compare)
    for agreement in compare(str(path), from_file):
        assert agreement.ok and agreement.matched > 0, agreement.text()
    # tshark finds nothing amiss in the TCP it reads (no gap was written: the largest
    # payload cap), and no problem in the protocol that it does not find in the real
    # capture of the same traffic (its dissectors lag behind some servers: Kafka's
    # newer API versions, parts of MySQL's)
    assert stats["written"]["gaps"] == 0
    found = findings(path, decode_as(service.protocol, port))
    assert not {f for f in found if f[1] == SEQUENCE}, found
    assert service.fixture is not None
    real = findings(FIXTURES / service.protocol / service.fixture,
                    decode_as(service.protocol, service.port))  # fmt: skip
    assert {f for f in found if f[1] != SEQUENCE} <= real, (found, real)
    # every packet names one of the server's processes
    comments = [row[0] for row in tshark_rows(path, "frame.comment")]
    assert comments and all(c.startswith("pid ") for c in comments)
    assert all(COMMENT.fullmatch(c) for c in comments), comments[:3]
    assert {int(c.split()[1]) for c in comments} <= set(pids)


REDIS_PORT = 26391
#: A small payload cap, and a value well beyond it.
SMALL_CAP, VALUE = 64, "v" * 500


def test_a_payload_cap_is_a_missing_segment_of_real_bytes(tmp_path: Path) -> None:
    path = tmp_path / "gap.pcapng"
    cli = ["redis-cli", "-p", str(REDIS_PORT)]
    with redis_server(REDIS_PORT):
        _, stats = traced_write(
            path, ["--port", str(REDIS_PORT), "--payload-cap", str(SMALL_CAP)],
            lambda: subprocess.run([*cli, "SET", "big", VALUE], check=True, capture_output=True,
                                   timeout=30))  # fmt: skip

    assert stats["written"]["gaps"] > 0 and stats["written"]["gap_bytes"] >= len(VALUE) - SMALL_CAP
    found = findings(path)
    assert (WARNING, SEQUENCE, "Previous segment(s) not captured (common at capture start)") in (
        found) or (WARNING, SEQUENCE, "ACKed segment that wasn't captured (common at capture "
                   "start)") in found, found  # fmt: skip
    assert not [f for f in found if f[0] == ERROR], found
    # the bytes written are the real ones: the request's first SMALL_CAP bytes
    request = f"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${len(VALUE)}\r\n{VALUE}\r\n".encode()
    payloads = [bytes.fromhex(row[1]) for row in tshark_rows(path, "tcp.dstport", "tcp.payload")
                if row[0] == str(REDIS_PORT) and row[1]]  # fmt: skip
    assert request[:SMALL_CAP] in payloads
    assert all(len(p) <= SMALL_CAP for p in payloads)


def test_the_library_writes_the_pcapng_of_its_records(tmp_path: Path) -> None:
    """``Tracer.records(write=)``: the file, closed when the records end, holds the
    records the iterator gave (the server's end: the connection is written once)."""
    import threading

    from libtrace import Tracer

    path, port = tmp_path / "api.pcapng", REDIS_PORT + 1
    cli = ["redis-cli", "-p", str(port)]
    with redis_server(port), Tracer(ports=(port,), go_tls=False) as tracer:
        def traffic() -> None:
            for command in (["SET", "k", "v"], ["GET", "k"], ["INCR", "n"]):
                subprocess.run([*cli, *command], check=True, capture_output=True, timeout=30)
            tracer.stop()

        threading.Timer(0.5, traffic).start()
        live = [r.to_json() for r in tracer.records(write=path) if r.side == "server"]
    written = [r.to_json() for r in analyze(str(path))]

    commands = [r["request"]["command"] for r in live if r["request"]]
    assert commands.count("SET") == commands.count("GET") == commands.count("INCR") == 1
    assert sorted(map(protocol_key, written)) == sorted(map(protocol_key, live))


@pytest.mark.go_toolchain
def test_go_tls_plaintext_is_http2_for_tshark(tmp_path: Path) -> None:
    from tests.golang.conftest import go_binary, go_versions
    from tests.golang.test_cli_tls import server_connections
    from tests.golang.test_tls_capture import go_server
    from tests.waiting import wait_for

    binary = go_binary("https_server", go_versions()[-1], stripped=True)
    path = tmp_path / "tls.pcapng"
    with go_server(binary, tmp_path / "keys") as server:
        url = f"https://127.0.0.1:{server.port}"

        def traffic() -> None:
            subprocess.run(["curl", "-sk", "--http2", f"{url}/one", f"{url}/two"], check=True,
                           capture_output=True, timeout=20)  # fmt: skip
            wait_for(lambda: not server_connections(server.port), "the server closed")

        cli = [sys.executable, "-m", "libtrace.cli", "trace", "--records", "--json"]
        records, _ = traced_write(path, ["--port", str(server.port)], traffic, cli=cli)

    tls = [r for r in records if r["tls"]]
    assert sorted(r["request"]["path"] for r in tls if r["protocol"] == "http2") == ["/one",
                                                                                     "/two"]
    rows = tshark_rows(path, "tcp.srcport", "tcp.dstport", "http2.header.value",
                       "frame.comment")  # fmt: skip
    plaintext = [r for r in rows if r[3].endswith(" tls") and " go_tls_" in r[3]]
    assert plaintext and all(str(TLS_PLAINTEXT_PORT) in r[:2] for r in plaintext)
    assert all(r[3].split()[1] == str(server.pid) for r in plaintext)
    values = ",".join(r[2] for r in plaintext)
    assert "/one" in values and "/two" in values  # tshark dissected HTTP/2 requests

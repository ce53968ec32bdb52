"""Go TLS plaintext from the uprobes equals what tshark decrypts with the key log.

For every Debian Go toolchain, with symbols and stripped: a Go HTTPS server
(attached when the tracer starts) and two Go clients started after the
tracer (attached after a short delay; they wait before connecting), one
speaking HTTP/1.1 and one HTTP/2.  tcpdump records the same connections on
the wire, and both Go programs write their TLS secrets to a key log, so
``tshark -o tls.keylog_file:…`` decrypts the pcap independently of the
tracer.  Each connection's plaintext, in both directions and from both ends,
must be byte for byte what tshark decrypted.
"""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dpkt
import pytest

from libtrace import Direction, SocketEvent, Tracer
from libtrace.services.tcpdump import capture
from libtrace.tracer.events import EventFlag, Syscall
from tests.golang.conftest import go_binary, go_versions
from tests.tracing import drain, streams
from tests.waiting import wait_for

pytestmark = [pytest.mark.root, pytest.mark.bpf, pytest.mark.go_toolchain]

#: Seconds a new Go program runs before the uprobes attach, in these tests.
DELAY = 0.3


@contextlib.contextmanager
def go_server(binary: Path, keylog: Path, *extra: str) -> Iterator[subprocess.Popen[str]]:
    """Run the test HTTPS server on a free loopback port; yields it with ``.port``."""
    proc = subprocess.Popen(
        [str(binary), "-addr", "127.0.0.1:0", "-keylog", str(keylog), *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r":(\d+)$", line.strip())
        assert match, f"server said {line!r}"
        proc.port = int(match.group(1))  # type: ignore[attr-defined]
        yield proc
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def tcpdump(path: Path, ports: list[int]) -> Iterator[None]:
    """Capture loopback traffic of ``ports`` into ``path`` while the block runs
    (the harness's one capture: proven live before, complete after)."""
    expression = "tcp and (" + " or ".join(f"port {port}" for port in ports) + ")"
    with capture(path, expression, keep_markers=False) as wire:
        yield
        # The programs may still be closing: wait until the file holds the end
        # of every connection it holds the start of, then prove it written.
        wait_for(lambda: connections_ended(path), f"every connection's end in {path}")
        wire.mark()


def connections_ended(pcap: Path) -> bool:
    """True when every TCP connection whose SYN ``pcap`` holds has ended in it too:
    a FIN from each end, or a RST.  False while it has none, or ends mid-packet."""
    opened, fins, resets = set(), set(), set()
    try:
        with pcap.open("rb") as f:
            for _ts, frame in dpkt.pcap.Reader(f):
                ip = dpkt.ethernet.Ethernet(frame).data
                tcp = getattr(ip, "data", None)
                if not isinstance(tcp, dpkt.tcp.TCP):
                    continue
                src = (socket.inet_ntoa(ip.src), tcp.sport)
                dst = (socket.inet_ntoa(ip.dst), tcp.dport)
                conn = frozenset((src, dst))
                if tcp.flags & dpkt.tcp.TH_SYN and not tcp.flags & dpkt.tcp.TH_ACK:
                    opened.add(conn)
                if tcp.flags & dpkt.tcp.TH_FIN:
                    fins.add((conn, src))
                if tcp.flags & dpkt.tcp.TH_RST:
                    resets.add(conn)
    except (ValueError, dpkt.UnpackError):
        return False  # the header or the last packet is still being written
    return bool(opened) and all(
        conn in resets or all((conn, end) in fins for end in conn) for conn in opened
    )


def tshark_plaintext(
    pcap: Path, keylog: Path, server_port: int
) -> dict[int, tuple[bytes, bytes]]:
    """Decrypted application data per connection: client port → (client→server, server→client)."""
    ports = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y",
         f"tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.dstport=={server_port}",
         "-T", "fields", "-e", "tcp.stream", "-e", "tcp.srcport"],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")
    starts = dict(line.split("\t") for line in ports if line)
    follow = subprocess.run(
        ["tshark", "-r", str(pcap), "-o", f"tls.keylog_file:{keylog}", "-q",
         *(arg for stream in starts for arg in ("-z", f"follow,tls,raw,{stream}"))],
        capture_output=True, text=True, check=True,
    ).stdout
    out = {}
    for report in follow.split("Follow: tls,raw")[1:]:
        stream = re.search(r"^Filter: tcp.stream eq (\d+)$", report, re.MULTILINE)
        node0 = re.search(r"^Node 0: .*:(\d+)$", report, re.MULTILINE)
        assert stream and node0, report
        to_server, to_client = bytearray(), bytearray()
        # Node 0's rows are unindented, node 1's behind a tab; which end
        # node 0 is depends on tshark's view of the stream, so ask its port.
        unindented, indented = (
            (to_client, to_server) if int(node0.group(1)) == server_port else (to_server, to_client)
        )
        for row in report.split("Node 1:", 1)[1].split("\n")[1:]:
            if row.strip() and not row.startswith("="):
                target = indented if row.startswith("\t") else unindented
                target.extend(bytes.fromhex(row.strip()))
        out[int(starts[stream.group(1)])] = (bytes(to_server), bytes(to_client))
    return out


def collect(
    tracer: Tracer, clients: list[subprocess.Popen[str]], events: list[SocketEvent] | None = None
) -> list[SocketEvent]:
    """TLS events (after ``events``) until every client has exited, then until the
    buffer is quiet."""
    events = list(events or [])
    deadline = time.monotonic() + 30
    while any(c.poll() is None for c in clients) and time.monotonic() < deadline:
        events.extend(e for e in tracer.poll(100) if e.tls)
    return events + [e for e in drain(tracer) if e.tls]


def by_connection(
    events: list[SocketEvent], server_pid: int
) -> dict[tuple[int, str], dict[Direction, bytes]]:
    """Traced plaintext per (client port, "server"|"client") and direction.

    Grouped by the socket's ports before reassembly: a closed connection's fd
    number is soon reused by the next one, whose offsets start at 0 again.
    """
    groups: dict[tuple[int, int, int, int], list[SocketEvent]] = {}
    for event in events:
        groups.setdefault((event.pid, event.fd, event.lport, event.rport), []).append(event)
    out: dict[tuple[int, str], dict[Direction, bytes]] = {}
    for (pid, _fd, lport, rport), group in groups.items():
        side = "server" if pid == server_pid else "client"
        client_port = rport if side == "server" else lport
        for (_, _, direction), data in streams(group).items():
            out.setdefault((client_port, side), {})[direction] = data
    return out


@dataclass
class Run:
    """One toolchain build's server, what its clients printed, and both captures."""

    server: subprocess.Popen[str]
    port: int
    keylog: Path
    outputs: list[str] = field(default_factory=list)
    clients: list[subprocess.Popen[str]] = field(default_factory=list)


BUILDS = [(v, s) for v in go_versions() for s in (False, True)]


def _ids(build: tuple[str, bool]) -> str:
    return f"{build[0]}-{'stripped' if build[1] else 'symbols'}"


@pytest.fixture(scope="module")
def server_side(tmp_path_factory):
    """Every build's server traced at once, with curl as the client (HTTP/1.1 and HTTP/2).

    One tracing session for all builds: detaching a uprobe costs the kernel an
    RCU grace period (~0.15 s each, serialized), so fewer sessions is faster.
    """
    tmp = tmp_path_factory.mktemp("gotls")
    runs: dict[tuple[str, bool], Run | str] = {}
    with contextlib.ExitStack() as stack:
        for version, stripped in BUILDS:
            try:
                binary = go_binary("https_server", version, stripped=stripped)
            except pytest.skip.Exception as exc:
                runs[(version, stripped)] = str(exc)
                continue
            keylog = tmp / f"{_ids((version, stripped))}.keys"
            server = stack.enter_context(go_server(binary, keylog))
            runs[(version, stripped)] = Run(server, server.port, keylog)
        live = [run for run in runs.values() if isinstance(run, Run)]
        pcap = tmp / "wire.pcap"
        stack.enter_context(tcpdump(pcap, [run.port for run in live]))
        tracer = stack.enter_context(Tracer(go_attach_delay=DELAY, payload_cap=16384))
        for run in live:
            assert run.server.pid in tracer.go_tls.attached  # running before: attached at once
            url = f"https://127.0.0.1:{run.port}/path/{run.port}"
            run.clients = [
                subprocess.Popen(
                    ["curl", "-sk", "--http1.1", url, url],
                    stdout=subprocess.PIPE, text=True,
                ),
                subprocess.Popen(
                    ["curl", "-sk", "--http2", "-d", "h2 body", url, url],
                    stdout=subprocess.PIPE, text=True,
                ),
            ]
        events = collect(tracer, [c for run in live for c in run.clients])
        stats = tracer.stats()
        for run in live:
            run.outputs = [c.communicate(timeout=30)[0] for c in run.clients]
    # Loss explains a gap before any comparison does.
    assert stats.lost == 0 and stats.missed == 0, stats
    return runs, events, pcap


@pytest.mark.parametrize("build", BUILDS, ids=_ids)
def test_server_plaintext_equals_the_keylog_decryption(build, server_side):
    """Both directions of an HTTP/1.1 and an HTTP/2 connection, every toolchain build."""
    runs, events, pcap = server_side
    run = runs[build]
    if isinstance(run, str):
        pytest.skip(run)
    assert run.outputs[0].count("hello HTTP/1.1 /path/") == 2, run.outputs[0]
    assert run.outputs[1].count("hello HTTP/2.0 /path/") == 2, run.outputs[1]
    mine = [e for e in events if e.pid == run.server.pid]
    assert all(e.flags & EventFlag.TLS for e in mine)
    assert {e.syscall for e in mine} == {Syscall.GO_TLS_READ, Syscall.GO_TLS_WRITE}
    traced = by_connection(mine, run.server.pid)
    wire = tshark_plaintext(pcap, run.keylog, run.port)
    assert len(wire) == 2, wire.keys()
    for client_port, (to_server, to_client) in wire.items():
        assert to_server and to_client
        assert traced[(client_port, "server")] == {
            Direction.INGRESS: to_server,
            Direction.EGRESS: to_client,
        }


CLIENT_BUILDS = [(go_versions()[0], True), (go_versions()[-1], False)]


@pytest.mark.parametrize("build", CLIENT_BUILDS, ids=_ids)
def test_a_go_client_started_later_is_traced_from_both_ends(build, tmp_path):
    """Go client and Go server: the client, exec'd after the tracer started, is
    attached after the delay and its plaintext equals the server's and tshark's."""
    version, stripped = build
    server_bin = go_binary("https_server", version, stripped=stripped)
    client_bin = go_binary("https_client", version, stripped=stripped)
    keylog, pcap = tmp_path / "keys.log", tmp_path / "wire.pcap"
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(go_server(server_bin, keylog))
        stack.enter_context(tcpdump(pcap, [server.port]))
        tracer = stack.enter_context(Tracer(go_attach_delay=DELAY, payload_cap=16384))
        url = f"https://127.0.0.1:{server.port}/path/{version}"
        clients = [
            subprocess.Popen(
                [str(client_bin), "-url", url, "-keylog", str(keylog), "-stdin-go",
                 "-n", "2", *flags],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )
            for flags in ([], ["-h2", "-post", "h2 body"])
        ]
        # The clients connect once the watcher has attached to them (after the delay).
        early: list[SocketEvent] = []

        def attached() -> bool:
            early.extend(e for e in tracer.poll(50) if e.tls)
            return all(c.pid in tracer.go_tls.attached for c in clients)

        wait_for(attached, "both Go clients attached", 30)
        for client in clients:
            assert client.stdin is not None
            client.stdin.write("go\n")
            client.stdin.flush()  # communicate() closes it
        events = collect(tracer, clients, early)
        outputs = [c.communicate(timeout=30)[0] for c in clients]
    assert outputs[0].count("HTTP/1.1 200") == 2, outputs[0]
    assert outputs[1].count("HTTP/2.0 200") == 2, outputs[1]
    assert {c.pid for c in clients} <= {e.pid for e in events}
    traced = by_connection([e for e in events if e.pid in {server.pid, *(c.pid for c in clients)}],
                           server.pid)
    wire = tshark_plaintext(pcap, keylog, server.port)
    assert len(wire) == 2, wire.keys()
    for client_port, (to_server, to_client) in wire.items():
        assert to_server and to_client
        assert traced[(client_port, "server")] == {
            Direction.INGRESS: to_server, Direction.EGRESS: to_client,
        }
        assert traced[(client_port, "client")] == {
            Direction.EGRESS: to_server, Direction.INGRESS: to_client,
        }

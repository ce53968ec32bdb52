"""The memory budget: thousands of connections that each start a message claiming
megabytes cost at most the budget, and the well-behaved connection beside them
keeps every record.

Each run is a child process, so that its peak RSS is its own: without the
budget the same events make it hold far more (the test's proof that they stress
what the budget bounds), with it the peak stays under the budget plus a constant.
"""

from __future__ import annotations

import json
import subprocess
import sys

from libtrace.records import RecordPipeline

from ._events import Socket
from ._live import env

MIB = 1 << 20
#: Connections that each buffer CLAIM_CHUNKS chunks of a 4 MB bulk string.
HOSTILE, CLAIM_CHUNKS, CHUNK = 2500, 16, 4096
#: What the child's Python, its objects per connection and the events in flight
#: may add beyond the budget.
CONSTANT = 48 * MIB

CHILD = """
import json, sys
from tests.records.test_budget import peak_rss, run
budget = int(sys.argv[1])
before = peak_rss()
stats, good, held = run(budget)
print(json.dumps({"growth": peak_rss() - before, "cuts": stats.budget_cuts, "good": good,
                  "held": held}))
"""


def peak_rss() -> int:
    """This process's peak resident set, in bytes: VmHWM, the high-water mark of
    its own memory.  (Not ru_maxrss: after a vfork and exec it starts at the
    parent's peak, which under a long test run is higher than this child's.)"""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def events():
    """Hostile connections interleaved with one that does SET/GET all along."""
    good = Socket(99, 3, comm="good")
    yield good.connect()
    hostile = [Socket(10_000 + n, 5, remote=("127.0.0.1", 6379)) for n in range(HOSTILE)]
    for sock in hostile:
        yield sock.send(b"*1\r\n$4000000\r\n")
    for _ in range(CLAIM_CHUNKS):
        for n, sock in enumerate(hostile):
            yield sock.send(b"x" * CHUNK)
            if n % 500 == 0:
                key = f"k{n}".encode()
                yield good.send(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key))
                yield good.recv(b"$2\r\nok\r\n")
    yield good.close()


def run(budget: int) -> tuple[object, list[str], int]:
    """Feed the events: (the pipeline's stats, the good connection's commands with
    status, the bytes the parsers hold at the end)."""
    pipeline = RecordPipeline(budget_bytes=budget)
    good = []
    for event in events():
        for record in pipeline.feed(event):
            if record.comm == "good":
                request = record.exchange.request
                good.append(f"{request.args[0] if request else '?'} {record.exchange.status}")
    return pipeline.stats, good, pipeline.buffered()


def child(budget: int) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(budget)], capture_output=True,
                         text=True, check=True, env=env(), timeout=600)  # fmt: skip
    return json.loads(out.stdout)


def test_many_connections_claiming_megabytes_stay_within_the_budget() -> None:
    budget = 32 * MIB
    bounded, unbounded = child(budget), child(1 << 40)

    held = HOSTILE * CLAIM_CHUNKS * CHUNK  # what the parsers would hold: 156 MiB
    # Without the budget the parsers hold it all (their own limits are 4 MiB each);
    # with it, at most the budget, and the process's peak RSS stays under the budget
    # plus a constant.  (The unbounded run's RSS, 187 MiB here when the machine is
    # quiet, is not asserted: a host short of memory may page part of it out.)
    assert unbounded["held"] >= held and unbounded["cuts"] == 0, unbounded
    assert bounded["held"] <= budget and bounded["cuts"] > 0, bounded
    assert bounded["growth"] < budget + CONSTANT, bounded
    expected = [f"k{n} ok" for n in range(0, HOSTILE, 500)] * CLAIM_CHUNKS
    assert bounded["good"] == unbounded["good"] == expected


def test_a_cut_back_connection_reports_a_gap_and_parses_on() -> None:
    sock = Socket(7, 3, remote=("127.0.0.1", 6379))
    pipeline = RecordPipeline(budget_bytes=64 * 1024)
    for event in [sock.connect(), sock.send(b"*1\r\n$4000000\r\n"), sock.send(b"x" * 60_000)]:
        assert pipeline.feed(event) == []
    pipeline.feed(sock.send(b"x" * 10_000))  # past the look's slice: the look cuts it back

    assert pipeline.stats.budget_cuts == 1 and pipeline.stats.budget_bytes > 60_000
    assert pipeline.stats.desyncs >= 1


def test_chunks_held_back_by_reassembly_count_in_the_budget() -> None:
    """Connections whose first chunk never came (lost) hold their later chunks back,
    waiting: those bytes count, and a cut releases them (the hole a gap)."""
    budget = 256 * 1024
    pipeline = RecordPipeline(budget_bytes=budget)
    socks = [Socket(20_000 + n, 5, remote=("127.0.0.1", 6379)) for n in range(40)]
    for sock in socks:
        pipeline.feed(sock.connect())
        sock.send(b"*1\r\n$4\r\nPING\r\n")  # made, never fed: the hole at offset 0
    for _ in range(8):  # 40 x 8 x 4 KiB = 1.25 MiB held back, five times the budget
        for sock in socks:
            pipeline.feed(sock.send(b"*1\r\n$4\r\nPING\r\n".ljust(4096, b" ")))

    assert pipeline.stats.budget_cuts > 0 and pipeline.stats.gaps > 0, pipeline.stats
    assert pipeline.buffered() <= budget


def test_segments_a_capture_holds_behind_a_hole_count_in_the_budget() -> None:
    """Flows whose first data segment was not captured hold the later ones back,
    waiting for it: those bytes count, and a cut gives the hole up as a gap."""
    from libtrace.pcap import PcapAnalyzer
    from libtrace.pcap._reader import TCP_ACK, TCP_SYN, Packet

    server, budget = ("10.0.0.2", 6379), 1 * MIB
    analyzer = PcapAnalyzer(budget_bytes=budget)
    for n in range(400):  # 400 flows x 4 x 4 KiB = 6.25 MiB held back
        client = (f"10.0.1.{n // 200}", 20000 + n % 200)
        analyzer.packet(Packet(n, "tcp", *client, *server, b"", 99, TCP_SYN))
        for k in range(4):  # bytes 1..14 (a PING) never came: a hole before these
            seq = 114 + k * 4096
            analyzer.packet(Packet(n, "tcp", *client, *server, b"x" * 4096, seq, TCP_ACK))
    held = sum(stream.pending_bytes for flow in analyzer._flows.values()
               for stream in flow.streams.values())  # fmt: skip

    assert analyzer.summary.budget_cuts > 0 and analyzer.summary.gaps > 0, analyzer.summary
    assert held <= budget


def test_the_pcap_analyser_keeps_to_its_budget_too() -> None:
    """Flows of a capture that each start a large Redis value are cut back once
    they hold more than the budget; a flow of PINGs beside them keeps its records."""
    from libtrace.pcap import PcapAnalyzer
    from libtrace.pcap._reader import TCP_ACK, TCP_SYN, Packet

    def packet(src: tuple[str, int], dst: tuple[str, int], seq: int, data: bytes,
               flags: int = TCP_ACK) -> Packet:
        return Packet(seq, "tcp", src[0], src[1], dst[0], dst[1], data, seq, flags)

    server = ("10.0.0.2", 6379)
    analyzer = PcapAnalyzer(budget_bytes=1 * MIB)
    good = ("10.0.0.1", 40000)
    flows = [(f"10.0.1.{n // 200}", 20000 + n % 200) for n in range(400)]
    records = analyzer.packet(packet(good, server, 99, b"", TCP_SYN))
    for client in flows:
        records += analyzer.packet(packet(client, server, 99, b"", TCP_SYN))
        records += analyzer.packet(packet(client, server, 100, b"*1\r\n$4000000\r\n"))
    for round_ in range(4):
        for client in flows:
            records += analyzer.packet(packet(client, server, 114 + round_ * 4096, b"x" * 4096))
        seq = 100 + round_ * 14
        records += analyzer.packet(packet(good, server, seq, b"*1\r\n$4\r\nPING\r\n"))
        records += analyzer.packet(packet(server, good, 1000 + round_ * 7, b"+PONG\r\n"))
    records += analyzer.finish()

    assert analyzer.summary.budget_cuts > 0, analyzer.summary
    assert "cut back to the memory budget" in analyzer.summary.text()
    pings = [r for r in records if r.client == "10.0.0.1:40000"]
    assert [(r.exchange.request.command, r.exchange.status) for r in pings] == [  # type: ignore[union-attr]
        ("PING", "ok")] * 4

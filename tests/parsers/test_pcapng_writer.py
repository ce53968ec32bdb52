"""The pcapng writer fed events built here (no BPF): what tshark and ``libtrace pcap`` read back."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from libtrace import EventType, SocketEvent, Syscall
from libtrace.output import PRIVATE_MODE
from libtrace.pcap import PcapngWriter, analyze, read_packets
from libtrace.pcap.writer import MAX_SEGMENT, TLS_PLAINTEXT_PORT

from ..records._events import Socket
from ..records._live import env

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")

#: Epoch time of CLOCK_MONOTONIC 0 in these files.
CLOCK = 1_700_000_000 * 1_000_000_000
CLIENT, SERVER = ("127.0.0.1", 40000), ("127.0.0.1", 6379)
PING, PONG = b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"


def written(path: Path, *batches: list[SocketEvent], **options: Any) -> Path:
    with PcapngWriter.open(path, clock_offset_ns=CLOCK, **options) as writer:
        for batch in batches:
            writer.write(batch)
    return path


def tshark(path: Path, *fields: str, extra: tuple[str, ...] = ()) -> list[list[str]]:
    """Per packet, the values of ``fields`` (tshark -T fields)."""
    argv = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=|", *extra]
    for name in fields:
        argv += ["-e", name]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return [line.split("|") for line in done.stdout.splitlines()]


def expert(path: Path) -> str:
    """tshark's expert summary: errors and warnings, by kind."""
    argv = ["tshark", "-r", str(path), "-q", "-z", "expert,warn"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def named(event: SocketEvent, syscall: Syscall) -> SocketEvent:
    return replace(event, syscall=syscall)


def redis_exchange() -> list[SocketEvent]:
    client = Socket(100, 5, CLIENT, SERVER, comm="redis-cli")
    return [named(client.connect(), Syscall.CONNECT), client.send(PING),
                    client.recv(PONG), named(client.close(), Syscall.CLOSE)]  # fmt: skip


def test_sequence_and_acknowledgement_follow_the_offsets(tmp_path: Path) -> None:
    client = Socket(100, 5, CLIENT, SERVER)
    events = [client.send(b"a" * 10), client.recv(b"b" * 5), client.send(b"c" * 3)]
    path = written(tmp_path / "t.pcapng", events)

    rows = tshark(path, "tcp.srcport", "tcp.seq", "tcp.ack", "tcp.len")
    # relative numbers: byte offset + 1 (no handshake seen: tshark counts from the first)
    assert rows == [["40000", "1", "1", "10"], ["6379", "1", "11", "5"],
                    ["40000", "11", "6", "3"]]  # fmt: skip
    raw = tshark(path, "tcp.seq_raw", "tcp.ack_raw")
    client_isn, server_isn = int(raw[0][0]) - 1, int(raw[1][0]) - 1
    assert int(raw[2][0]) == client_isn + 1 + 10 and int(raw[2][1]) == server_isn + 1 + 5
    assert "Warns" not in expert(path) and "Errors" not in expert(path)


def test_connect_and_close_write_the_handshake_and_fin(tmp_path: Path) -> None:
    events = redis_exchange()
    path = written(tmp_path / "t.pcapng", events)

    rows = tshark(path, "tcp.srcport", "tcp.flags.str", "tcp.seq", "tcp.ack", "frame.comment")
    flags = [(r[0], r[1].replace("\u00b7", "")) for r in rows]
    assert flags == [("40000", "S"), ("6379", "AS"), ("40000", "A"), ("40000", "AP"),
                     ("6379", "AP"), ("40000", "AF"), ("6379", "A")]  # fmt: skip
    assert rows[5][2:4] == [str(1 + len(PING)), str(1 + len(PONG))]  # the FIN after the data
    assert rows[6][3] == str(2 + len(PING))  # the peer ACKs the FIN
    comments = [r[4] for r in rows]
    assert comments[0] == "pid 100 tid 100 comm redis-cli fd 5 syscall connect"
    assert [c.endswith(" synthesized") for c in comments] == [False, True, False, False, False,
                                                               False, True]  # fmt: skip
    assert "syscall close" in comments[5]
    assert "Warns" not in expert(path) and "Errors" not in expert(path)
    # libtrace pcap reads the file back into the exchange
    (record,) = [r.to_json() for r in analyze(str(path))]
    assert (record["protocol"], record["client"], record["server"]) == ("redis", "127.0.0.1:40000",
                                                                         "127.0.0.1:6379")
    assert record["request"]["command"] == "PING" and record["response"]["value"] == "PONG"
    assert record["ts_ns"] == events[1].ts_ns + CLOCK


def test_accept_makes_the_traced_process_the_server(tmp_path: Path) -> None:
    server = Socket(200, 8, SERVER, CLIENT, comm="redis-server")
    path = written(tmp_path / "t.pcapng", [named(server.accept(), Syscall.ACCEPT4),
                                           server.recv(PING), server.send(PONG)])  # fmt: skip

    rows = tshark(path, "tcp.srcport", "tcp.flags.syn", "tcp.flags.ack", "frame.comment")
    assert [r[:3] for r in rows[:3]] == [["40000", "1", "0"], ["6379", "1", "1"],
                                         ["40000", "0", "1"]]  # fmt: skip
    assert rows[0][3].endswith("synthesized") and not rows[1][3].endswith("synthesized")


def test_a_connection_traced_from_both_ends_is_written_once(tmp_path: Path) -> None:
    events = redis_exchange()
    server = Socket(200, 8, SERVER, CLIENT, comm="redis-server")
    mirror = [named(server.accept(), Syscall.ACCEPT4), server.recv(PING), server.send(PONG),
              named(server.close(), Syscall.CLOSE)]  # fmt: skip
    both = [events[0], mirror[0], events[1], mirror[1], mirror[2], events[2], events[3],
            mirror[3]]  # fmt: skip
    with PcapngWriter.open(tmp_path / "t.pcapng", clock_offset_ns=CLOCK) as writer:
        writer.write(both)

    rows = tshark(tmp_path / "t.pcapng", "tcp.srcport", "tcp.flags.fin", "frame.comment")
    assert len(rows) == 9  # handshake, two segments, two FINs with their ACKs
    assert writer.stats.mirrored == 3  # the server's accept and data
    assert [r[2].split()[1] for r in rows[:7]] == ["100"] * 7
    assert rows[7][:2] == ["6379", "1"] and rows[7][2].startswith("pid 200 ")
    assert "Warns" not in expert(tmp_path / "t.pcapng")


def test_lost_bytes_and_the_payload_cap_are_missing_segments(tmp_path: Path) -> None:
    client = Socket(100, 5, CLIENT, SERVER)
    message = bytes(range(256)) * 2
    cut = client.send(message[:64], size=len(message))  # the payload cap kept 64 of 512
    lost = client.send(b"x" * 100)  # the event that carried these was lost
    after = client.send(b"tail")
    path = tmp_path / "t.pcapng"
    with PcapngWriter.open(path, clock_offset_ns=CLOCK) as writer:
        writer.write([client.connect(), cut, after, client.recv(PONG)])

    rows = tshark(path, "tcp.seq", "tcp.payload", "tcp.analysis.lost_segment",
                  "tcp.analysis.ack_lost_segment")  # fmt: skip
    data = [r for r in rows if r[1]]
    assert bytes.fromhex(data[0][1]) == message[:64]  # the real bytes, nothing invented
    assert data[1][0] == str(1 + len(message) + len(lost.data)) and data[1][2] == "1"
    assert bytes.fromhex(data[1][1]) == b"tail"
    assert (writer.stats.gaps, writer.stats.gap_bytes) == (2, 448 + 100)
    assert "Previous segment(s) not captured" in expert(path)
    assert "Malformed" not in expert(path)


def test_a_large_chunk_is_split_into_segments(tmp_path: Path) -> None:
    client = Socket(100, 5, CLIENT, SERVER)
    data = bytes(range(256)) * 300  # 76800 bytes: above what one IPv4 packet holds
    path = written(tmp_path / "t.pcapng", [client.send(data)])

    rows = tshark(path, "tcp.seq", "tcp.len")
    assert rows == [["1", str(MAX_SEGMENT)], [str(1 + MAX_SEGMENT), str(len(data) - MAX_SEGMENT)]]
    packets = list(read_packets(str(path)))
    assert b"".join(p.payload for p in packets) == data


def test_ipv6_and_udp_each_get_an_interface(tmp_path: Path) -> None:
    six = Socket(100, 5, ("::1", 40000), ("::1", 6379))
    to_six = [replace(event, family="ipv6") for event in (six.send(PING), six.recv(PONG))]
    dig = Socket(300, 3, ("127.0.0.1", 45000), ("127.0.0.1", 53), l4="udp", comm="dig")
    query = bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d0000010001")
    path = written(tmp_path / "t.pcapng", [*to_six, dig.send(query),
                                           dig.send(query[:12], size=len(query))])  # fmt: skip

    rows = tshark(path, "frame.interface_name", "ipv6.src", "udp.dstport", "dns.qry.name",
                  "frame.len", "frame.cap_len")  # fmt: skip
    assert [r[0] for r in rows] == ["libtrace-ipv6"] * 2 + ["libtrace-ipv4"] * 2
    assert rows[0][1] == "::1" and rows[2][2:4] == ["53", "example.com"]
    # the datagram the payload cap cut: its full length said, the missing bytes not written
    assert int(rows[3][4]) - int(rows[3][5]) == len(query) - 12
    assert "Malformed" not in expert(path)
    assert [r.to_json()["server"] for r in analyze(str(path))] == ["[::1]:6379",
                                                                   "127.0.0.1:53"]  # fmt: skip


class _Resolver:
    """Every process in one container (what ContainerResolver says, faked)."""

    class _Container:
        id, name = "f" * 64, "shop-api"

    def resolve(self, cgroup_id: int, pid: int) -> Any:
        return self._Container() if cgroup_id == 7 else None


def test_comments_name_the_container_and_tls(tmp_path: Path) -> None:
    plain = Socket(100, 5, ("127.0.0.1", 8443), ("127.0.0.1", 50000), comm="api", cgroup_id=7)
    tls = Socket(100, 5, ("127.0.0.1", 8443), ("127.0.0.1", 50000), comm="api", tls=True,
                 cgroup_id=7)  # fmt: skip
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")
    events = [named(plain.accept(), Syscall.ACCEPT4), plain.recv(b"\x16\x03\x01ciphertext"),
              named(tls.recv(preface), Syscall.GO_TLS_READ)]  # fmt: skip
    path = written(tmp_path / "t.pcapng", events, containers=_Resolver())

    rows = tshark(path, "tcp.srcport", "tcp.dstport", "frame.comment", "http2.magic")
    assert rows[-1][2] == ("pid 100 tid 100 comm api fd 5 syscall go_tls_read "
                           "container shop-api tls")  # fmt: skip
    # the plaintext is a stream of its own, where tshark finds HTTP/2
    assert rows[-1][:2] == ["50000", str(TLS_PLAINTEXT_PORT)] and rows[-1][3]
    assert rows[3][:2] == ["50000", "8443"] and "tls" not in rows[3][2].split()


def test_a_file_cut_after_a_batch_is_readable(tmp_path: Path) -> None:
    path = tmp_path / "t.pcapng"
    events = redis_exchange()
    writer = PcapngWriter.open(path, clock_offset_ns=CLOCK)
    writer.write(events[:2])
    for event in events[2:]:  # fed, not yet flushed: Ctrl-C comes now
        writer.feed(event)
    # the file as the killed process leaves it (nothing written since the last batch)
    assert stat.S_IMODE(path.stat().st_mode) == PRIVATE_MODE
    assert len(tshark(path, "frame.number")) == 4
    assert [r.to_json()["request"]["command"] for r in analyze(str(path))] == ["PING"]
    writer.close()
    assert len(tshark(path, "frame.number")) == 7


def test_events_of_unknown_sockets_are_counted_not_written(tmp_path: Path) -> None:
    client = Socket(100, 5, CLIENT, SERVER)
    unknown = replace(client.send(PING), l4="", family="")
    with PcapngWriter.open(tmp_path / "t.pcapng", clock_offset_ns=CLOCK) as writer:
        writer.write([unknown, replace(client.event(EventType.EXEC), type=EventType.EXIT)])
    assert writer.stats.unknown == 1 and writer.stats.packets == 0
    assert tshark(tmp_path / "t.pcapng", "frame.number") == []


@pytest.mark.parametrize("where", ["directory", "missing-parent"])
def test_write_to_an_unusable_path_is_one_line_and_exit_2(tmp_path: Path, where: str) -> None:
    target = tmp_path if where == "directory" else tmp_path / "no" / "t.pcapng"
    done = subprocess.run([sys.executable, "-m", "libtrace.cli", "trace", "--write",
                           str(target)], capture_output=True, text=True, check=False,
                          env=env())  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and str(target) in done.stderr


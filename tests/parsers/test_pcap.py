"""``libtrace pcap``: golden fixtures, tshark as the oracle, TCP reassembly, bad input."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import struct
import subprocess
from decimal import Decimal
from pathlib import Path

import dpkt
import pytest

from libtrace.pcap import PcapError, TcpStream, analyze
from libtrace.pcap.cli import add_pcap_command

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
PCAPS = sorted([*FIXTURES.glob("*/*.pcap"), *FIXTURES.glob("*/*.pcapng")])
#: tshark decode-as for the fixtures' non-standard ports
DECODE_AS = {"http1": ["tcp.port==18080,http"], "http2": ["tcp.port==18443,http2"],
             "redis": ["tcp.port==16379,resp"],
             "dns": ["udp.port==15353,dns", "tcp.port==15353,dns"]}


def _records(path: Path) -> list[dict]:
    return [json.loads(json.dumps(r.to_json(), sort_keys=True)) for r in analyze(str(path))]


@pytest.mark.parametrize("pcap", PCAPS, ids=[f"{p.parent.name}/{p.name}" for p in PCAPS])
def test_golden(pcap: Path) -> None:
    expected = [json.loads(line) for line in pcap.with_suffix(".expected.jsonl").open()]
    assert expected, "the fixture has records"
    assert _records(pcap) == expected


def _tshark(pcap: Path, fields: list[str], decode_as: list[str]) -> list[list[list[str]]]:
    """Per packet, per field, every value tshark found (pipelined messages give several)."""
    out = subprocess.run(["tshark", "-r", str(pcap), *[a for d in decode_as for a in ("-d", d)],
                          "-T", "fields",
                          "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=;",
                          *[a for f in fields for a in ("-e", f)]],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    return [[[v for v in col.split(";") if v] for col in line.split("|")]
            for line in out.splitlines() if line.strip("|")]


needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")


@needs_tshark
def test_http1_against_tshark() -> None:
    pcap = FIXTURES / "http1" / "nginx.pcap"
    rows = _tshark(pcap, ["http.request.method", "http.request.uri", "http.response.code"],
                   DECODE_AS["http1"])
    requests = [pair for m, u, _ in rows for pair in zip(m, u, strict=True)]
    statuses = [int(code) for _, _, c in rows for code in c]
    ours = _records(pcap)
    assert sorted(requests) == sorted((r["request"]["method"], r["request"]["path"])
                                      for r in ours)
    assert sorted(statuses) == sorted(r["response"]["status"] for r in ours)


@needs_tshark
def test_dns_against_tshark() -> None:
    pcap = FIXTURES / "dns" / "dnsmasq.pcap"
    rows = _tshark(pcap, ["dns.id", "dns.qry.name", "dns.flags.response", "dns.flags.rcode"],
                   DECODE_AS["dns"])
    theirs = sorted((int(i[0], 16), n[0] + ".", int(c[0])) for i, n, resp, c in rows
                    if resp and resp[0] in ("1", "True"))
    rcodes = {"NOERROR": 0, "NXDOMAIN": 3, "SERVFAIL": 2}
    ours = sorted((r["response"]["id"], r["response"]["name"], rcodes[r["response"]["rcode"]])
                  for r in _records(pcap))
    assert ours == theirs


@needs_tshark
def test_http2_against_tshark() -> None:
    pcap = FIXTURES / "http2" / "nghttpd.pcap"
    rows = _tshark(pcap, ["http2.streamid", "http2.headers.method", "http2.headers.path",
                          "http2.headers.status"], DECODE_AS["http2"])
    methods = [pair for _, m, p, _ in rows for pair in zip(m, p, strict=True)]
    statuses = [int(code) for *_, st in rows for code in st]
    ours = _records(pcap)
    assert sorted(methods) == sorted((r["request"]["method"], r["request"]["path"])
                                     for r in ours)
    assert sorted(statuses) == sorted(r["response"]["status"] for r in ours)


@needs_tshark
def test_redis_against_tshark() -> None:
    pcap = FIXTURES / "redis" / "redis.pcap"
    rows = _tshark(pcap, ["tcp.dstport", "resp.bulk_string.value"], DECODE_AS["redis"])
    # every bulk string the clients sent (tshark shows them as hex or text)
    def text(value: str) -> str:
        try:
            return bytes.fromhex(value).decode().lower()
        except ValueError:
            return value.lower()

    theirs = [text(v) for port, values in rows if port == ["16379"] for v in values]
    ours = [w.lower() for r in _records(pcap) if r["request"] and not r["request"]["inline"]
            for w in (r["request"]["command"], *r["request"]["args"])]
    assert sorted(theirs) == sorted(ours)


# -- TCP reassembly -------------------------------------------------------------------------
def test_reassembly_out_of_order_and_retransmission() -> None:
    data = bytes(range(256)) * 8
    segments = [(1000 + i, data[i:i + 100]) for i in range(0, len(data), 100)]
    shuffled = segments + segments[3:6]  # retransmissions
    random.Random(4).shuffle(shuffled)
    stream = TcpStream()
    stream.syn(999)
    out = b"".join(c.data for seq, seg in shuffled for c in stream.segment(seq, seg, 0))
    out += b"".join(c.data for c in stream.flush())
    assert out == data


def test_reassembly_wraps_and_reports_gaps() -> None:
    stream = TcpStream()
    seq = (1 << 32) - 50
    first = stream.segment(seq, b"a" * 100, 1)
    later = stream.segment((seq + 200) % (1 << 32), b"b" * 10, 2)
    tail = stream.flush()
    assert [c.data for c in first] == [b"a" * 100] and later == []
    assert [(c.gap, c.data) for c in tail] == [(100, b""), (0, b"b" * 10)]


def _write_pcap(path: Path, frames: list[bytes], linktype: int = dpkt.pcap.DLT_EN10MB) -> None:
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=linktype)
        for i, frame in enumerate(frames):
            writer.writepkt(frame, ts=1700000000 + i / 1000)


def _packets(pcap: Path) -> list[bytes]:
    with pcap.open("rb") as f:
        return [buf for _, buf in dpkt.pcap.Reader(f)]


def _exchanges(records: list[dict]) -> list[tuple]:
    return sorted((r["client"], r["request"]["method"], r["request"]["path"],
                   r["response"]["status"]) for r in records if r["request"] and r["response"])


def test_reordered_and_retransmitted_capture_gives_same_records(tmp_path: Path) -> None:
    pcap = FIXTURES / "http1" / "nginx.pcap"
    frames = _packets(pcap)
    mixed: list[bytes] = []
    for i in range(0, len(frames) - 1, 2):  # swap neighbours, retransmit every third
        mixed += [frames[i + 1], frames[i]] + ([frames[i]] if i % 3 == 0 else [])
    mixed += frames[len(mixed) // 2 * 2:] if len(frames) % 2 else []
    target = tmp_path / "mixed.pcap"
    _write_pcap(target, mixed)
    assert mixed != frames
    # Every exchange of the capture (its recorder's requests), from both files.
    assert _exchanges(_records(pcap)) == _exchanges(_records(target)) == [
        ("127.0.0.1:54516", "GET", "/index.html", 200),
        ("127.0.0.1:54516", "GET", "/missing", 404),
        ("127.0.0.1:54520", "HEAD", "/index.html", 200),
        ("127.0.0.1:54530", "POST", "/index.html", 405),
        ("127.0.0.1:54546", "GET", "/big.txt", 200),
        ("127.0.0.1:54548", "GET", "/index.html", 200),
        ("127.0.0.1:54548", "GET", "/nope", 404),
    ]


def _clients_opening(frames: list[bytes]) -> set[str]:
    """``ip:port`` of every client whose SYN is among ``frames``."""
    clients = set()
    for frame in frames:
        ip = dpkt.ethernet.Ethernet(frame).data
        tcp = ip.data
        if isinstance(tcp, dpkt.tcp.TCP) and tcp.flags & dpkt.tcp.TH_SYN and not (
            tcp.flags & dpkt.tcp.TH_ACK
        ):
            clients.add(f"{socket.inet_ntoa(ip.src)}:{tcp.sport}")
    return clients


def _untimed(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("ts_ns", "latency_ns")}


def test_mid_connection_http2_capture(tmp_path: Path) -> None:
    source = FIXTURES / "http2" / "nghttpd.pcap"
    frames = _packets(source)
    target = tmp_path / "mid.pcap"
    _write_pcap(target, frames[10:])  # no SYN, no preface, no first header blocks
    records = _records(target)  # degrade, never crash, and still give HTTP/2 records
    assert records and all(record["protocol"] == "http2" for record in records)
    # A connection that opens after the cut is whole: its records are the full capture's.
    later = _clients_opening(frames[10:])
    assert later and not later & _clients_opening(frames[:10])
    whole = [_untimed(r) for r in _records(source) if r["client"] in later]
    assert whole and [_untimed(r) for r in records if r["client"] in later] == whole


def test_linux_cooked_and_raw(tmp_path: Path) -> None:
    frames = [dpkt.ethernet.Ethernet(f).data for f in _packets(FIXTURES / "dns" / "dnsmasq.pcap")]
    raw = tmp_path / "raw.pcap"
    _write_pcap(raw, [bytes(ip) for ip in frames], linktype=101)
    sll = tmp_path / "sll.pcap"
    _write_pcap(sll, [bytes(dpkt.sll.SLL(type=0, ethtype=0x0800, data=ip)) for ip in frames],
                linktype=113)
    ether = tmp_path / "ether.pcap"
    _write_pcap(ether, _packets(FIXTURES / "dns" / "dnsmasq.pcap"))
    golden = _records(ether)
    assert golden and _records(raw) == golden == _records(sll)


def test_nanosecond_pcap_keeps_every_nanosecond(tmp_path: Path) -> None:
    """tcpdump --time-stamp-precision=nano writes these; dpkt gives Decimal times."""
    source = FIXTURES / "redis" / "redis.pcap"
    with source.open("rb") as f:
        original = list(dpkt.pcap.Reader(f))
    nano = tmp_path / "nano.pcap"
    with nano.open("wb") as f:
        writer = dpkt.pcap.Writer(f, nano=True)
        for i, (ts, frame) in enumerate(original):
            writer.writepkt(frame, ts=Decimal(int(ts * 1_000_000)) / 1_000_000
                            + Decimal(i % 1000) / 1_000_000_000)
    golden, got = _records(source), _records(nano)
    assert golden and len(got) == len(golden)
    for ours, theirs in zip(got, golden, strict=True):
        assert 0 <= ours["ts_ns"] - theirs["ts_ns"] < 1000  # the added nanoseconds, kept
        assert {k: v for k, v in ours.items() if k not in ("ts_ns", "latency_ns")} == {
            k: v for k, v in theirs.items() if k not in ("ts_ns", "latency_ns")}
    assert any(r["ts_ns"] % 1000 for r in got)


# -- bad input ---------------------------------------------------------------------------------
def _run_cli(path: Path, capsys: pytest.CaptureFixture[str],
             *options: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    add_pcap_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["pcap", str(path), *(options or ("--json",))])
    code = args.handler(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run_cli(FIXTURES / "redis" / "redis.pcap", capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and lines and all(r["type"] == "record" for r in lines)
    # The run's summary goes to stderr, leaving stdout to the records.
    assert err == "summary: 8 connections (8 tcp); redis 8; 12 records, 0 gaps, 0 desyncs\n"


def test_the_table_ends_with_what_the_capture_held(capsys: pytest.CaptureFixture[str]) -> None:
    """An empty table is never silent: the summary names what was not recognised."""
    code, out, err = _run_cli(FIXTURES / "http1" / "nginx.pcap", capsys, "--timeout", "5")
    assert code == 0 and not err
    assert out.splitlines()[-1] == (
        "summary: 5 connections (5 tcp); http1 5; 7 records, 0 gaps, 0 desyncs")


def _truncated(tmp: Path) -> Path:
    data = (FIXTURES / "http1" / "nginx.pcap").read_bytes()
    path = tmp / "cut.pcap"
    path.write_bytes(data[:-7])
    return path


def _corrupt(tmp: Path) -> Path:
    data = bytearray((FIXTURES / "http1" / "nginx.pcap").read_bytes())
    data[24 + 8:24 + 12] = struct.pack("<I", 0x7FFFFFFF)  # first record's caplen
    path = tmp / "corrupt.pcap"
    path.write_bytes(bytes(data))
    return path


def _not_pcap(tmp: Path) -> Path:
    path = tmp / "notes.txt"
    path.write_text("this is not a capture\n")
    return path


def _pcapng_unknown_blocks(tmp: Path) -> Path:
    shb = struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
    idb = struct.pack("<IIHHI", 1, 20, 1, 0, 0) + struct.pack("<I", 20)
    unknown = struct.pack("<II", 0x0BADF00D, 16) + b"\x00" * 4 + struct.pack("<I", 16)
    frame = next(iter(_packets(FIXTURES / "http1" / "nginx.pcap")))
    pad = (-len(frame)) % 4
    body = struct.pack("<IIIII", 0, 0, 0, len(frame), len(frame)) + frame + b"\x00" * pad
    epb = struct.pack("<II", 6, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
    path = tmp / "unknown.pcapng"
    path.write_bytes(shb + idb + unknown + epb + unknown)
    return path


@pytest.mark.parametrize(("make", "message"), [
    (_truncated, "truncated"), (_corrupt, "corrupt"), (_not_pcap, "not a pcap"),
    (lambda tmp: tmp / "missing.pcap", "cannot open"),
], ids=["truncated", "corrupt", "not-pcap", "missing"])
def test_bad_input_one_line_exit_2(make, message: str, tmp_path: Path,  # type: ignore[no-untyped-def]
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run_cli(make(tmp_path), capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("libtrace: error: ") and message in err
    assert "Traceback" not in err


def test_table_of_a_bad_file_prints_no_header(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run_cli(tmp_path / "missing.pcap", capsys, "--timeout", "5")
    assert code == 2 and out == "" and "cannot open" in err


def test_pcapng_unknown_blocks_are_skipped(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run_cli(_pcapng_unknown_blocks(tmp_path), capsys)
    assert code == 0 and err.startswith("summary: 1 connection (1 tcp); 1 unrecognised")


def test_pcap_error_is_a_libtrace_error() -> None:
    from libtrace.errors import LibtraceError
    with pytest.raises(LibtraceError):
        list(analyze("/nonexistent.pcap"))
    assert issubclass(PcapError, LibtraceError)


def test_ipv4_fragments_are_put_back_together(tmp_path: Path) -> None:
    """A DNS answer too large for one packet, fragmented (the middle piece first):
    its record comes out whole, as from the unfragmented capture."""
    import dns.message
    import dns.rrset

    query = dns.message.make_query("big.example.", "TXT")
    answer = dns.message.make_response(query)
    texts = [f'"{"x" * 200}{i}"' for i in range(12)]
    answer.answer.append(dns.rrset.from_text("big.example.", 60, "IN", "TXT", *texts))
    client, server = socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.53")

    def ip_frame(ip: dpkt.ip.IP) -> bytes:
        return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6,
                                            type=dpkt.ethernet.ETH_TYPE_IP, data=ip))  # fmt: skip

    def udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes, ip_id: int) -> bytes:
        datagram = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
        datagram.ulen = len(datagram)
        return bytes(dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_UDP, id=ip_id,
                                data=datagram))  # fmt: skip

    whole = udp(server, client, 53, 40000, answer.to_wire(), 7)
    header, body = dpkt.ip.IP(whole).pack_hdr(), whole[20:]
    assert len(body) > 2400
    pieces = [body[:1000], body[1000:2000], body[2000:]]
    fragments = []
    for index, piece in enumerate(pieces):
        ip = dpkt.ip.IP(header + piece)
        ip.offset, ip.mf = index * 1000 // 8, int(index < 2)  # in 8-byte units
        ip.len, ip.sum = 20 + len(piece), 0
        fragments.append(ip_frame(dpkt.ip.IP(bytes(ip))))
    plain = [ip_frame(dpkt.ip.IP(udp(client, server, 40000, 53, query.to_wire(), 6)))]
    for name, frames in (("whole", [*plain, ip_frame(dpkt.ip.IP(whole))]),
                         ("fragmented", [*plain, fragments[1], fragments[0], fragments[2]])):
        _write_pcap(tmp_path / f"{name}.pcap", frames)
    (whole_record,) = (r.to_json() for r in analyze(str(tmp_path / "whole.pcap")))
    (cut_record,) = (r.to_json() for r in analyze(str(tmp_path / "fragmented.pcap")))
    assert cut_record["response"]["answers"] == whole_record["response"]["answers"]
    assert len(cut_record["response"]["answers"]) == 12 and cut_record["status"] == "ok"


def test_pcapng_interfaces_each_decoded_with_their_own_link_type(tmp_path: Path) -> None:
    """Two interfaces, Ethernet (microseconds) and raw IP (nanoseconds): each packet is
    read with its interface's link type and clock, as tshark reads such a file."""
    ethernet_frames = _packets(FIXTURES / "redis" / "redis.pcap")  # Ethernet frames
    eth = dpkt.ethernet.Ethernet(ethernet_frames[0])
    assert isinstance(eth.data, dpkt.ip.IP)
    options = [dpkt.pcapng.PcapngOptionLE(code=dpkt.pcapng.PCAPNG_OPT_IF_TSRESOL, data=b"\x09"),
               dpkt.pcapng.PcapngOptionLE(code=dpkt.pcapng.PCAPNG_OPT_ENDOFOPT)]  # fmt: skip
    blocks = [dpkt.pcapng.SectionHeaderBlockLE(),
              dpkt.pcapng.InterfaceDescriptionBlockLE(linktype=dpkt.pcap.DLT_EN10MB),
              dpkt.pcapng.InterfaceDescriptionBlockLE(linktype=101, opts=options)]  # fmt: skip
    for index, frame in enumerate(ethernet_frames):
        on_raw = index % 2 == 1  # every other packet on the raw-IP interface
        data = bytes(dpkt.ethernet.Ethernet(frame).data) if on_raw else frame
        ts = 1_700_000_000_000_000_000 + index * 1_000_000 if on_raw else (
            1_700_000_000_000_000 + index * 1_000)  # ns, or us  # fmt: skip
        blocks.append(dpkt.pcapng.EnhancedPacketBlockLE(
            iface_id=int(on_raw), ts_high=ts >> 32, ts_low=ts & 0xFFFFFFFF, pkt_data=data,
            caplen=len(data), pkt_len=len(data)))  # fmt: skip
    mixed = tmp_path / "mixed.pcapng"
    mixed.write_bytes(b"".join(bytes(block) for block in blocks))
    records = [r.to_json() for r in analyze(str(mixed))]
    expected = [r.to_json() for r in analyze(str(FIXTURES / "redis" / "redis.pcap"))]
    assert len(records) == len(expected) == 12  # the fixture's 12 records
    key = ("protocol", "client", "server", "request", "response", "status")
    assert [{k: r[k] for k in key} for r in records] == [{k: r[k] for k in key} for r in expected]
    # Both clocks give the same instants: packet i at 1.7e9 s + i ms.
    starts = {r["ts_ns"] - 1_700_000_000_000_000_000 for r in records}
    assert all(0 <= t < len(ethernet_frames) * 1_000_000 and t % 1_000_000 == 0 for t in starts)


@pytest.mark.parametrize(("capture", "row"), [
    ("kafka/tansu.pcap", "ApiVersions v4  => error 0"),
    ("mqtt/mosquitto.pcap", "CONNECT  => CONNACK rc 0"),
    ("mysql/mariadb.pcap", "handshake  => greeting 5.5.5-10.11.19-MariaDB"),
    ("mysql/mariadb.pcap", "LOGIN app  => error 1045 Access denied"),
    ("dns/dnsmasq.pcap", "example.test. A  => NOERROR A 10.1.2.3"),
    ("redis/redis.pcap", "SET greeting hello  => OK"),
    ("dubbo/fake-dubbo.pcap", "missing.Service sayHello  => SERVICE_NOT_FOUND service not found"),
    ("dubbo/dubbo-serializations.pcap", "org.demo.CatalogService find  => OK"),
    ("dubbo/dubbo-serializations.pcap",
     "serialization 9 (fst) not decoded  => OK serialization 9 (fst) not decoded"),
    ("mysql/mysql8-zstd.pcap", "COM_QUERY SELECT name FROM items WHERE name LIKE 'p%'"),
    ("http2/nghttpd.pcap", "GET /missing  => 404"),
])  # fmt: skip
def test_table_rows_say_what_each_protocol_exchanged(
    capture: str, row: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every protocol's row names its request and its answer (Kafka's api and
    error, MQTT's packet types, MySQL's SQL or login and the greeting as a
    handshake, DNS's name and answers), not an empty column."""
    code, out, _ = _run_cli(FIXTURES / capture, capsys, "--timeout", "5")
    assert code == 0
    assert any(row in line for line in out.splitlines()), out


def test_a_hole_is_given_up_after_its_wait_not_at_the_end_of_the_capture() -> None:
    from libtrace.flows.tcp import MAX_HOLE_WAIT_NS

    stream = TcpStream()
    stream.syn(999)
    assert [c.data for c in stream.segment(1000, b"a" * 10, 0)] == [b"a" * 10]
    assert stream.segment(1050, b"c" * 10, 100) == []  # 40 bytes missing before it
    assert stream.expire(100 + MAX_HOLE_WAIT_NS) == []  # still within the wait
    late = stream.expire(101 + MAX_HOLE_WAIT_NS)
    assert [(c.gap, c.data) for c in late] == [(40, b""), (0, b"c" * 10)]
    assert [c.data for c in stream.segment(1060, b"d", 200 + MAX_HOLE_WAIT_NS)] == [b"d"]


def test_records_after_a_lost_segment_come_out_in_time_not_at_the_end() -> None:
    """A server's answer is lost; the next one waits behind the hole.  A later
    packet of the flow (a bare ACK a second on) gives the hole up: the records
    of both requests come out then, not when the capture ends."""
    from libtrace.flows.tcp import MAX_HOLE_WAIT_NS
    from libtrace.pcap._reader import TCP_ACK, TCP_SYN, Packet
    from libtrace.pcap._session import PcapAnalyzer

    ping, pong = b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"  # 14 and 7 bytes
    c, s = ("10.0.0.1", 40000), ("10.0.0.2", 6379)

    def packet(src: tuple[str, int], dst: tuple[str, int], ts: int, seq: int, data: bytes,
               flags: int = TCP_ACK) -> Packet:
        return Packet(ts, "tcp", src[0], src[1], dst[0], dst[1], data, seq, flags)

    analyzer = PcapAnalyzer()
    packets = [
        packet(c, s, 0, 99, b"", TCP_SYN), packet(s, c, 1, 499, b"", TCP_SYN | TCP_ACK),
        packet(c, s, 10, 100, ping),  # its answer (bytes 500-506) is lost
        packet(c, s, 30, 114, ping), packet(s, c, 40, 507, pong),  # held behind the hole
    ]
    assert sum(len(analyzer.packet(p)) for p in packets) == 0
    later = analyzer.packet(packet(c, s, 40 + MAX_HOLE_WAIT_NS + 1, 128, b""))
    assert len(later) >= 2 and all(r.protocol == "redis" for r in later), later
    assert analyzer.summary.gaps == 1

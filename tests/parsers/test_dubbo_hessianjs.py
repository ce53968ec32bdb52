"""Dubbo checked by code someone else wrote: hessian.js as client and as oracle.

libtrace's Dubbo fixtures are encoded by its own hessian2 code on every side
(the FAKE server included), so a shared misreading would pass unseen.  Here
hessian.js (``tests/peers/hessianjs``, installed by ``scripts/install-deps.sh``)
encodes requests of several argument types, attachments, a one-way call and a
heartbeat against the FAKE server, and reads what came back; libtrace's parser
must read both byte streams as hessian.js meant them.  And hessian.js decodes
every frame of the Dubbo fixture captures, which libtrace's records must match.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from libtrace.parsers import PARSERS
from libtrace.parsers._dubbo import HESSIAN2, SERIALIZATION_MASK, DubboStatus
from libtrace.parsers.pairing import Pairer
from libtrace.pcap import analyze, read_packets
from libtrace.services import start

ROOT = Path(__file__).resolve().parents[2]
PEER = ROOT / "tests" / "peers" / "hessianjs" / "dubbo.js"
FIXTURES = sorted((ROOT / "fixtures" / "dubbo").glob("*.pcap"))
HEADER = 16
#: Fields both sides name alike, per direction.
REQUEST_FIELDS = ("dubbo_version", "service", "version", "method")


def _node(*args: str, stdin: str | None = None) -> str:
    if shutil.which("node") is None or not (PEER.parent / "node_modules" / "hessian.js").is_dir():
        pytest.fail("node and hessian.js are needed: run scripts/install-deps.sh")
    proc = subprocess.run(["node", str(PEER), *args], input=stdin, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _records(sent: bytes, received: bytes) -> list[Any]:
    parser, pairer = PARSERS["dubbo"](), Pairer()
    parser.feed("request", sent, 1)
    parser.feed("response", received, 2)
    records = [r for event in parser.events() for r in pairer.add(event)]
    return records + pairer.flush()


def test_a_hessianjs_client_is_read_as_it_meant() -> None:
    with start("dubbo") as running:
        out = json.loads(_node("client", running.host, str(running.port)))
    records = _records(bytes.fromhex(out["sent"]), bytes.fromhex(out["received"]))
    ours = {r.request.request_id: r for r in records if r.request is not None}
    assert sorted(ours) == [req["id"] for req in out["requests"]]
    for theirs in out["requests"]:
        request = ours[theirs["id"]].request
        assert request.two_way == theirs["two_way"]
        assert request.event == theirs.get("event", False)
        if not request.event:
            assert {f: getattr(request, f) for f in REQUEST_FIELDS} == {
                f: theirs[f] for f in REQUEST_FIELDS}
    answered = {r.request.request_id: r.response for r in records if r.response is not None}
    assert sorted(answered) == [resp["id"] for resp in out["responses"]]
    for theirs in out["responses"]:
        response = answered[theirs["id"]]
        if theirs.get("event"):
            assert response.event
            continue
        assert response.status == DubboStatus(theirs["status"])
        if theirs["status"] == DubboStatus.OK:
            assert response.result == theirs["result"]
        else:
            assert response.error_message == theirs["error_message"]


def _frames(pcap: Path) -> list[dict[str, Any]]:
    """Every Dubbo frame of each connection's client and server byte streams, with the
    connection's client endpoint (the sender of requests)."""
    streams: dict[tuple[str, int, str, int], bytes] = {}
    for packet in read_packets(str(pcap)):
        if packet.transport == "tcp" and packet.payload:
            key = (packet.src, packet.sport, packet.dst, packet.dport)
            streams[key] = streams.get(key, b"") + packet.payload
    frames = []
    for (src, sport, dst, dport), data in streams.items():
        request = bool(data[2] & 0x80) if len(data) > 2 else True
        client = f"{src}:{sport}" if request else f"{dst}:{dport}"
        at = 0
        while at + HEADER <= len(data):
            length = int.from_bytes(data[at + 12:at + 16], "big")
            frames.append({"client": client, "flags": data[at + 2],
                           "status": data[at + 3],
                           "id": int.from_bytes(data[at + 4:at + 12], "big"),
                           "body": data[at + HEADER:at + HEADER + length].hex()})  # fmt: skip
            at += HEADER + length
    return frames


def _hessian2_frames(pcap: Path) -> list[dict[str, Any]]:
    return [f for f in _frames(pcap) if f["flags"] & SERIALIZATION_MASK == HESSIAN2]


#: The Dubbo fixtures with hessian2 frames (the other serializations' is generated).
HESSIAN2_FIXTURES = [p for p in FIXTURES if _hessian2_frames(p)]


@pytest.mark.parametrize("pcap", HESSIAN2_FIXTURES, ids=[p.stem for p in HESSIAN2_FIXTURES])
def test_every_fixture_frame_reads_as_hessianjs_reads_it(pcap: Path) -> None:
    frames = _hessian2_frames(pcap)
    lines = "".join(json.dumps({"body": f["body"], "request": bool(f["flags"] & 0x80),
                                "status": f["status"], "event": bool(f["flags"] & 0x20)}) + "\n"
                    for f in frames)  # fmt: skip
    decoded = [json.loads(line) for line in _node("decode", stdin=lines).splitlines()]
    assert len(decoded) == len(frames) > 0
    records = [r.to_json() for r in analyze(str(pcap))]
    requests = {(r["client"], r["request"]["request_id"]): r["request"] for r in records
                if r["request"]}  # fmt: skip
    responses = {(r["client"], r["response"]["request_id"]): r["response"] for r in records
                 if r["response"]}  # fmt: skip
    checked = 0
    for frame, theirs in zip(frames, decoded, strict=True):
        assert "error" not in theirs, theirs
        key = (frame["client"], frame["id"])
        if frame["flags"] & 0x20:  # an event: a heartbeat's null body
            assert theirs["values"] == [None]
        elif frame["flags"] & 0x80:
            assert {f: requests[key][f] for f in REQUEST_FIELDS} == {
                f: theirs[f] for f in REQUEST_FIELDS}
        elif theirs["status"] == DubboStatus.OK:
            assert responses[key]["result"] == theirs["result"]
        else:
            assert responses[key]["error_message"] == theirs["error_message"]
        checked += 1
    assert checked == len(frames)


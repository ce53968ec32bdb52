"""A protocol is one descriptor: a toy protocol, defined and registered here
only, is inferred, parsed and paired, summarised in ``libtrace pcap``'s table
and JSON, and (with a service of its name) offered as a matrix column, with no
other module touched.

The toy protocol is line-based: a client sends ``TOY <word>\\n``, the server
answers ``OK <word>\\n`` or ``ERR <word>\\n``.  Its service is a FAKE (never
started: the matrix only lists columns here).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from libtrace.cli import main
from libtrace.matrix.capabilities import capabilities, column_title
from libtrace.parsers import (
    SPECS,
    Direction,
    Match,
    Message,
    Pairer,
    ProtocolSpec,
    Side,
    Status,
    StreamParser,
    UnknownProtocolError,
    infer,
    parser_for,
    register,
    unregister,
)
from libtrace.pcap.synth import write_tcp_conversation
from libtrace.services import SERVICES
from libtrace.services._description import Service

TOY_PORT = 7777


# Not slots=True: a class defined outside libtrace on a compiled wheel's
# Message would declare slots that shadow the compiled base's fields.
@dataclass(frozen=True, kw_only=True)
class ToyRequest(Message):
    word: str

    @property
    def protocol(self) -> str:
        return "toy"


@dataclass(frozen=True, kw_only=True)
class ToyResponse(Message):
    word: str
    error: bool = False

    @property
    def protocol(self) -> str:
        return "toy"

    @property
    def direction(self) -> Direction:
        return Direction.RESPONSE

    @property
    def outcome(self) -> Status:
        return Status.CLIENT_ERROR if self.error else Status.OK


class ToyParser(StreamParser):
    protocol = "toy"

    def _parse(self, side: Side) -> Message | None:
        end = side.buf.find(b"\n")
        if end < 0:
            return None
        verb, _, word = bytes(side.buf[:end]).decode().partition(" ")
        ts = side.ts_at(0)
        side.consume(end + 1)
        if side.direction is Direction.REQUEST:
            return ToyRequest(ts_ns=ts, size=end + 1, word=word)
        return ToyResponse(ts_ns=ts, size=end + 1, word=word, error=verb == "ERR")


def toy_signature(data: bytes, udp: bool) -> Match:
    if udp:
        return None
    if data.startswith(b"TOY "):
        return 0.9, Direction.REQUEST
    if data.startswith((b"OK ", b"ERR ")):
        return 0.35, Direction.RESPONSE
    return None


TOY = ProtocolSpec(
    name="toy",
    title="Toy",
    parser=ToyParser,
    signature=toy_signature,
    ports=frozenset({TOY_PORT}),
    request_summary=("word",),
    response_summary=("word",),
)


def _never(*_: object) -> None:
    raise AssertionError("the FAKE toy service is never started here")


#: A FAKE service: the matrix lists a column per service; nothing starts it.
FAKE_TOY_SERVICE = Service(
    name="toy", protocol="toy", package=None, program="fake-toy-server", port=TOY_PORT,
    command=lambda running: ["fake-toy-server"], ready=lambda running: False, traffic=_never,
)  # fmt: skip


@pytest.fixture
def toy() -> Iterator[ProtocolSpec]:
    register(TOY)
    try:
        yield TOY
    finally:
        unregister("toy")


def test_registered_it_is_inferred_from_its_bytes_and_helped_by_its_port(toy: ProtocolSpec) -> None:
    request = infer(b"TOY hello\n")
    assert (request.protocol, request.direction) == ("toy", Direction.REQUEST)
    assert infer(b"OK hello\n").protocol == "toy"  # 0.35: just above the floor
    assert infer(b"OK hello\n", ports=(TOY_PORT,)).confidence == pytest.approx(0.45)
    assert parser_for("toy") is ToyParser


def test_unregistered_nothing_knows_it() -> None:
    assert "toy" not in SPECS
    assert infer(b"TOY hello\n").protocol is None
    with pytest.raises(UnknownProtocolError):
        parser_for("toy")


def test_registering_a_taken_name_or_a_mismatched_parser_is_refused(toy: ProtocolSpec) -> None:
    with pytest.raises(ValueError, match="registered already"):
        register(TOY)
    with pytest.raises(ValueError, match="parses 'toy'"):
        register(ProtocolSpec(name="other", title="Other", parser=ToyParser,
                              signature=toy_signature))  # fmt: skip


def test_its_parser_and_the_pairer_make_records(toy: ProtocolSpec) -> None:
    parser, pairer = parser_for("toy")(), Pairer()
    parser.feed("request", b"TOY a\nTOY b\n", ts_ns=1_000)
    parser.feed("response", b"OK a\nERR b\n", ts_ns=3_000)
    records = [r for event in parser.events() for r in pairer.add(event)]
    assert [(r.status, r.latency_ns, r.to_dict()["request"]) for r in records] == [
        (Status.OK, 2_000, {"word": "a"}),
        (Status.CLIENT_ERROR, 2_000, {"word": "b"}),
    ]


@pytest.fixture
def toy_pcap(tmp_path: Path) -> Path:
    return write_tcp_conversation(tmp_path / "toy.pcap", TOY_PORT, [
        (True, b"TOY apple\n"), (False, b"OK apple\n"),
        (True, b"TOY pear\n"), (False, b"ERR pear\n"),
    ])  # fmt: skip


def test_libtrace_pcap_summarises_it_from_the_descriptor(
    toy: ProtocolSpec, toy_pcap: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pcap", str(toy_pcap)]) == 0
    _header, *rows, summary = capsys.readouterr().out.splitlines()
    assert len(rows) == 2, rows
    assert all(row.split()[1] == "toy" for row in rows), rows
    assert rows[0].endswith("apple  => apple") and "client_error" in rows[1], rows
    assert "2 records" in summary

    assert main(["pcap", "--json", str(toy_pcap)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    words = [(r["request"]["word"], r["status"]) for r in records if r["type"] == "record"]
    assert words == [("apple", "ok"), ("pear", "client_error")]


def test_without_the_descriptor_the_same_capture_has_no_records(
    toy_pcap: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pcap", "--json", str(toy_pcap)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert not [r for r in records if r["type"] == "record"]


def test_with_its_service_the_matrix_offers_its_column(
    toy: ProtocolSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "check_toy" not in {c.name for c in capabilities()}
    monkeypatch.setitem(SERVICES, "toy", FAKE_TOY_SERVICE)
    names = [c.name for c in capabilities()]
    assert "check_toy" in names
    # after the other check_* columns, before the forced variants
    assert names.index("check_toy") > names.index("check_dubbo")
    assert names.index("check_toy") < names.index("compat_perfbuf")
    assert column_title("check_toy") == "Toy"

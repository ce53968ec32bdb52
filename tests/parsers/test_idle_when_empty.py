"""``StreamParser.idle_when_empty``: the parsers that say it make nothing of an
empty buffer, so the loop that skips calling them then changes no record.

A parser that kept ready messages, or a body that ends by itself, would lose
them if it said so wrongly.  With the shortcut off, every call the loop makes
with an empty buffer, over every fixture capture of such a protocol, answers
``None`` and leaves the direction as it was; and each capture gives the same
records with the shortcut on and off.  (Pure Python only: a compiled parser's
class attributes and methods cannot be swapped.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from libtrace.compiled import compiled_modules
from libtrace.parsers import PARSERS, StreamParser
from libtrace.parsers._base import Side
from libtrace.pcap import analyze

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
IDLE = sorted(name for name, parser in PARSERS.items() if parser.idle_when_empty)

pytestmark = pytest.mark.skipif(
    "libtrace.parsers._base" in compiled_modules(),
    reason="a compiled parser's class attributes and methods are fixed",
)


def test_the_parsers_that_keep_ready_messages_do_not_say_it() -> None:
    # HTTP/1 ends a body of known length by itself; HTTP/2 and MySQL keep ready queues.
    assert IDLE == ["dns", "dubbo", "kafka", "mqtt", "redis"]
    assert not StreamParser.idle_when_empty  # the default is the safe one


def _records(pcap: Path) -> list[dict[str, Any]]:
    return [record.to_json(headers=True) for record in analyze(str(pcap))]


@pytest.mark.parametrize("name", IDLE)
def test_an_empty_buffer_parses_to_nothing_and_the_records_are_the_same(
    name: str, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    captures = sorted((FIXTURES / name).glob("*.pcap"))
    shortcut = [_records(pcap) for pcap in captures]
    assert all(shortcut)
    parser_class = PARSERS[name]
    parse = parser_class._parse
    empty_calls = []

    def checked_parse(self: StreamParser, side: Side) -> Any:
        before = (side.skip, side.resync, side.eof, side.pending, side.partial)
        empty = not side.buf
        event = parse(self, side)
        if empty:
            empty_calls.append(event)
            assert event is None, event
            assert (side.skip, side.resync, side.eof, side.pending, side.partial) == before
        return event

    monkeypatch.setattr(parser_class, "idle_when_empty", False)
    monkeypatch.setattr(parser_class, "_parse", checked_parse)
    assert [_records(pcap) for pcap in captures] == shortcut
    assert empty_calls  # the loop did call it with empty buffers: the check ran

"""``StreamParser.idle_when_empty``: the parsers that say it make nothing of an
empty buffer, so the loop that skips calling them then changes no record.

A parser that kept ready messages, or a body that ends by itself, would lose
them if it said so wrongly.  Each such protocol's fixture captures run
through a subclass of its parser (registered in its place) that says the
opposite, so that the loop calls ``_parse`` with empty buffers again, and
checks every such call: it answers ``None`` and leaves the direction as it
was; and the records are the same as the real parser's.  (A subclass, not a
patch: it works on the compiled parsers too, which ``tests/test_compiled.py``
runs these tests against.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from libtrace.parsers import PARSERS, Event, StreamParser
from libtrace.parsers._base import Side
from libtrace.parsers._events import _NeedData
from libtrace.pcap import analyze

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
IDLE = sorted(name for name, parser in PARSERS.items() if parser.idle_when_empty)


def test_the_parsers_that_keep_ready_messages_do_not_say_it() -> None:
    # HTTP/1 ends a body of known length by itself; HTTP/2 and MySQL keep ready queues.
    assert IDLE == ["dns", "dubbo", "kafka", "mqtt", "redis"]
    assert not StreamParser.idle_when_empty  # the default is the safe one


def _records(pcap: Path) -> list[dict[str, Any]]:
    return [record.to_json(headers=True) for record in analyze(str(pcap))]


def _checking(parser_class: type[StreamParser], empty_calls: list[object]) -> type[StreamParser]:
    """``parser_class`` with the shortcut off and every empty-buffer parse checked."""

    class Checking(parser_class):  # type: ignore[valid-type,misc]
        idle_when_empty = False

        def _parse(self, side: Side) -> Event | _NeedData | None:
            before = (side.skip, side.resync, side.eof, side.pending, side.partial)
            empty = not side.buf
            event = super()._parse(side)
            if empty:
                empty_calls.append(event)
                assert event is None, event
                assert (side.skip, side.resync, side.eof, side.pending, side.partial) == before
            return event  # type: ignore[no-any-return]

    return Checking


@pytest.mark.parametrize("name", IDLE)
def test_an_empty_buffer_parses_to_nothing_and_the_records_are_the_same(
    name: str, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    captures = sorted((FIXTURES / name).glob("*.pcap"))
    shortcut = [_records(pcap) for pcap in captures]
    assert all(shortcut)
    empty_calls: list[object] = []
    monkeypatch.setitem(PARSERS, name, _checking(PARSERS[name], empty_calls))
    assert [_records(pcap) for pcap in captures] == shortcut
    assert empty_calls  # the loop did call it with empty buffers: the check ran

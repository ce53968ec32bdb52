"""Feeding helpers shared by the parser tests: whole, byte by byte, with trailing junk."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from libtrace.parsers import Desync, Event, Message, StreamParser

#: How a case's bytes reach the parser.
MODES = ("whole", "bytewise", "junk")
JUNK = b"\x00\xffjunk\r\n\x00"


def run(
    factory: Callable[[], StreamParser],
    request: bytes,
    response: bytes,
    mode: str,
) -> list[Message | Desync]:
    """Feed both directions in ``mode``, end them, and return every event."""
    parser = factory()
    events: list[Message | Desync] = []
    for direction, data in (("request", request), ("response", response)):
        if mode == "junk":
            data += JUNK
        pieces: Sequence[bytes] = (
            [data[i : i + 1] for i in range(len(data))] if mode == "bytewise" else [data]
        )
        for i, piece in enumerate(pieces):
            parser.feed(direction, piece, ts_ns=1000 * (direction == "response") + i)
            events += parser.events()
    for direction in ("request", "response"):
        parser.feed(direction, b"", ts_ns=5000)
    events += parser.events()
    return events


def messages(events: Sequence[Message | Desync]) -> list[Message]:
    return [e for e in events if isinstance(e, Message)]


def reasons(events: Sequence[Event]) -> list[str]:
    """The reasons of the desyncs among ``events``, in order."""
    return [e.reason for e in events if isinstance(e, Desync)]


def fed_whole(parser: StreamParser, request: bytes = b"", response: bytes = b"", *,
              end: bool = False) -> list[Event]:  # fmt: skip
    """Each direction fed whole (the request at ts 1, the response at 2), both
    ended at ts 3 with ``end``; every event."""
    if request:
        parser.feed("request", request, 1)
    if response:
        parser.feed("response", response, 2)
    if end:
        parser.feed("request", b"", 3)
        parser.feed("response", b"", 3)
    return parser.events()


def summary(events: Sequence[Message | Desync], keys: Sequence[str]) -> list[dict[str, Any]]:
    """The chosen fields of each message, for comparison with a cases table."""
    return [{k: m.fields().get(k) for k in keys} for m in messages(events)]


def feed_chunks(parser: StreamParser, direction: str, data: bytes, cuts: Sequence[int]) -> list:
    """Feed ``data`` split at ``cuts`` (sorted offsets), pulling events after each piece."""
    events: list = []
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    for i, (start, end) in enumerate(itertools.pairwise(bounds)):
        if end > start:  # b"" would mean end of stream
            parser.feed(direction, data[start:end], ts_ns=i)
            events += parser.events()
    return events


def feed_to_eof(parser: StreamParser, request: bytes, response: bytes,
                 cuts: Sequence[int]) -> list[Event]:  # fmt: skip
    events = feed_chunks(parser, "request", request, cuts)
    events += feed_chunks(parser, "response", response, cuts)
    parser.feed("request", b"", 9)
    parser.feed("response", b"", 9)
    return events + parser.events()


def _comparable(events: Sequence[Event]) -> list[tuple[str, str]]:
    """Events without their timestamps (each piece has its own) and without a desync's
    wording (it quotes the bytes buffered when it happened)."""
    out = []
    for event in events:
        fields = dataclasses.asdict(event)
        fields.pop("ts_ns", None)
        if isinstance(event, Desync):
            fields.pop("reason")
        out.append((type(event).__name__, repr(fields)))
    return out


def _until_lost(events: Sequence[Event]) -> list[Event]:
    """Each direction's events up to and with its first desync."""
    lost: set[object] = set()
    out = []
    for event in events:
        if event.direction not in lost:
            out.append(event)
            if isinstance(event, Desync):
                lost.add(event.direction)
    return out


def assert_split_invariant(factory: Callable[[], StreamParser], request: bytes,
                           response: bytes, cuts: Sequence[int], *,
                           hunts_at_the_end: bool = False) -> list[Event]:  # fmt: skip
    """Both directions fed whole, then (to a second parser) split at ``cuts``, each
    ended: the events must be the same (a sans-IO parser must not depend on how the
    bytes were cut into pieces); the split run's events are returned.

    ``hunts_at_the_end``: the parser's resync takes a candidate that reaches the
    end of the bytes buffered so far (MQTT's, by design: waiting would leave a
    live response unpaired), so once a direction lost track what it finds
    depends on the cut; then each direction is compared up to its first desync."""
    whole = feed_to_eof(factory(), request, response, ())
    split = feed_to_eof(factory(), request, response, cuts)
    if hunts_at_the_end:
        assert _comparable(_until_lost(split)) == _comparable(_until_lost(whole))
    else:
        assert _comparable(split) == _comparable(whole)
    return split

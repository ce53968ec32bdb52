"""``--slow MS`` and ``--min-size BYTES``: which records ``stat``, ``trace --records`` and
``pcap`` keep.

A record is slow when its latency (response time minus request time) is at
least the threshold; a record without a latency (unanswered, one-way, a
response alone) is never slow.  A record's size is the bytes its request and
response took on the wire (headers included, as the parsers measured them).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .flows import FlowRecord
from .parsers import Record

#: Nanoseconds in a millisecond (``--slow`` takes milliseconds).
NS_PER_MS = 1_000_000


def record_bytes(exchange: Record) -> int:
    """The bytes an exchange's request and response took on the wire."""
    request, response = exchange.request, exchange.response
    return (request.size if request is not None else 0) + (
        response.size if response is not None else 0
    )


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """Keeps the records at least ``slow_ns`` slow and ``min_bytes`` large (None: any)."""

    slow_ns: int | None = None
    min_bytes: int | None = None

    def __call__(self, record: FlowRecord) -> bool:
        exchange = record.exchange
        if self.slow_ns is not None and (
            exchange.latency_ns is None or exchange.latency_ns < self.slow_ns
        ):
            return False
        return self.min_bytes is None or record_bytes(exchange) >= self.min_bytes


def at_least(least: float, convert: Callable[[str], float], noun: str) -> Callable[[str], Any]:
    """An argparse type: ``convert`` of the text, a finite number at least ``least``
    (``noun`` names what the number counts, in its error)."""

    def number(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of {noun}: {text}") from None
        if not least <= value < math.inf:  # also NaN
            raise argparse.ArgumentTypeError(f"must be {least:g} or more, not {text}")
        return value

    return number


def add_filter_options(parser: argparse.ArgumentParser) -> None:
    """``--slow MS`` and ``--min-size BYTES``."""
    parser.add_argument(
        "--slow", type=at_least(0, float, "milliseconds"), metavar="MS",
        help="only records whose latency is at least MS milliseconds (unanswered ones never)",
    )  # fmt: skip
    parser.add_argument(
        "--min-size", type=at_least(0, int, "bytes"), metavar="BYTES",
        help="only records whose request and response took at least BYTES on the wire",
    )  # fmt: skip


def filter_flags(args: argparse.Namespace) -> list[str]:
    """The filter options given (for "acts only with ..." errors)."""
    return [flag for flag, value in (("--slow", args.slow), ("--min-size", args.min_size))
            if value is not None]  # fmt: skip


def record_filter_of(args: argparse.Namespace) -> RecordFilter:
    """The filter :func:`add_filter_options`' options ask for."""
    slow = round(args.slow * NS_PER_MS) if args.slow is not None else None
    return RecordFilter(slow_ns=slow, min_bytes=args.min_size)

"""``libtrace stat``'s arithmetic, sans-IO: records in, rows out.

Theory of operation: :class:`Aggregator` takes records one at a time (live or
from a capture; it reads no clock), files each under its group, the values
of the ``--by`` dimensions (:mod:`.keys`), and counts there: records, errors
(the record's status: ``client_error`` or ``server_error``, which each
protocol's parser decides: HTTP 4xx and 5xx, a Redis error reply, a MySQL ERR
packet, a Kafka error code, a DNS rcode other than NOERROR, a Dubbo status
other than OK, an MQTT reason code of failure, a gRPC status), timeouts, bytes on
the wire, and latencies.  :meth:`Aggregator.rows` turns the groups into
:class:`Row`\\ s, sorted, with the rate over a time the caller gives (the
capture's span, or the wall time a live trace ran).

Memory is bounded.  A group keeps at most :data:`MAX_SAMPLES` latencies
(8 bytes each): below that its percentiles are exact, beyond it they come
from a uniform sample of all its latencies (reservoir sampling, Vitter's
algorithm R, with a seeded generator so that a run is reproducible), and
the row says so (``exact``); the maximum is always exact.  At most
:data:`MAX_GROUPS` groups are kept; the records of further groups are
counted in one more, whose every dimension reads :data:`OTHER`.  So the
latencies take at most ``(MAX_GROUPS + 1) * MAX_SAMPLES * 8`` bytes
(:data:`MAX_LATENCY_BYTES`, 32 MiB) however long a trace runs.

Percentiles are by nearest rank: the p-th percentile of n sorted values is
the value of rank ``ceil(p * n / 100)``, one of the values, never an
interpolation.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..filters import record_bytes
from ..flows import FlowRecord
from ..parsers import Status
from .keys import DEFAULT_BY, DIMENSIONS

#: Latencies a group keeps: its percentiles are exact up to this many records.
MAX_SAMPLES: Final = 4096
#: Groups kept; the records of others are counted in one more, :data:`OTHER`.
MAX_GROUPS: Final = 1000
#: The most bytes all groups' latencies take.
MAX_LATENCY_BYTES: Final = (MAX_GROUPS + 1) * MAX_SAMPLES * 8
#: What each dimension of the group past :data:`MAX_GROUPS` reads.
OTHER: Final = "(other)"
#: The percentiles a row gives.
PERCENTILES: Final = (50, 90, 99)


def percentile(ordered: Sequence[int], p: int) -> int:
    """The ``p``-th percentile (0 < p <= 100) of ``ordered`` (sorted, not empty), by
    nearest rank."""
    rank = -(-p * len(ordered) // 100)  # ceil without floats
    return ordered[max(rank, 1) - 1]


class Latencies:
    """One group's latencies: all of them up to ``capacity``, then a uniform sample."""

    __slots__ = ("_ordered", "_rng", "capacity", "max", "samples", "seen")

    def __init__(self, capacity: int, rng: random.Random) -> None:
        self.capacity = capacity
        self.samples = array("q")  #: the latencies kept (ns), in arrival order
        self.seen = 0  #: latencies added
        self.max: int | None = None
        self._rng = rng
        self._ordered: list[int] | None = None  # sorted samples, until the next add

    def add(self, ns: int) -> None:
        self.seen += 1
        if self.max is None or ns > self.max:
            self.max = ns
        if len(self.samples) < self.capacity:
            self.samples.append(ns)
        else:
            # Algorithm R: the n-th value replaces a kept one with probability capacity/n.
            slot = self._rng.randrange(self.seen)
            if slot >= self.capacity:
                return
            self.samples[slot] = ns
        self._ordered = None

    @property
    def exact(self) -> bool:
        """Whether every latency is kept (the percentiles are exact)."""
        return self.seen <= self.capacity

    def percentile(self, p: int) -> int | None:
        """The ``p``-th percentile of the kept latencies; None without any."""
        if not self.samples:
            return None
        if self._ordered is None:
            self._ordered = sorted(self.samples)
        return percentile(self._ordered, p)


@dataclass(slots=True)
class _Group:
    latencies: Latencies
    count: int = 0
    client_errors: int = 0
    server_errors: int = 0
    timeouts: int = 0
    bytes: int = 0


@dataclass(frozen=True, slots=True)
class Row:
    """One group's numbers.

    Attributes:
        group: the values of the ``--by`` dimensions, in their order.
        rate: records per second over the time :meth:`Aggregator.rows` was given
            (None without one).
        errors: ``client_errors + server_errors``.
        latencies: the records that have a latency (answered ones).
        p50_ns, p90_ns, p99_ns, max_ns: of those latencies (None without any).
        exact: the percentiles are of every latency, not of a sample.
    """

    group: tuple[str, ...]
    count: int
    rate: float | None
    client_errors: int
    server_errors: int
    timeouts: int
    bytes: int
    latencies: int
    p50_ns: int | None
    p90_ns: int | None
    p99_ns: int | None
    max_ns: int | None
    exact: bool

    @property
    def errors(self) -> int:
        return self.client_errors + self.server_errors

    def to_json(self, by: Sequence[str]) -> dict[str, Any]:
        """The row of ``stat --json`` (README): the dimensions by name, then the numbers."""
        out: dict[str, Any] = dict(zip(by, self.group, strict=True))
        out.update(count=self.count, rate=self.rate, errors=self.errors,
                   client_errors=self.client_errors, server_errors=self.server_errors,
                   timeouts=self.timeouts, bytes=self.bytes, latencies=self.latencies,
                   p50_ns=self.p50_ns, p90_ns=self.p90_ns, p99_ns=self.p99_ns,
                   max_ns=self.max_ns, exact=self.exact)  # fmt: skip
        return out


def _descending(value: Callable[[Row], int | float | None]) -> Callable[[Row], tuple[Any, ...]]:
    # Largest first, rows without the value last, then by group for a stable order.
    def key(row: Row) -> tuple[Any, ...]:
        number = value(row)
        return (number is None, -(number or 0), row.group)

    return key


#: What ``--sort`` may name: the column rows are ordered by, largest first.
SORTS: Final[dict[str, Callable[[Row], tuple[Any, ...]]]] = {
    "count": _descending(lambda row: row.count),
    "errors": _descending(lambda row: row.errors),
    "p50": _descending(lambda row: row.p50_ns),
    "p90": _descending(lambda row: row.p90_ns),
    "p99": _descending(lambda row: row.p99_ns),
    "max": _descending(lambda row: row.max_ns),
    "bytes": _descending(lambda row: row.bytes),
}


@dataclass(slots=True)
class Aggregator:
    """Records in (:meth:`add`), rows out (:meth:`rows`); see the module docstring.

    Args:
        by: the dimensions of a group, names of :data:`~.keys.DIMENSIONS`.
        max_groups, max_samples: the bounds (:data:`MAX_GROUPS`, :data:`MAX_SAMPLES`).
        seed: of the reservoir sampling's generator.
    """

    by: tuple[str, ...] = DEFAULT_BY
    max_groups: int = MAX_GROUPS
    max_samples: int = MAX_SAMPLES
    seed: int = 0
    records: int = 0  #: records added
    first_ns: int | None = None  #: the earliest record's ts_ns
    last_ns: int | None = None  #: the latest record's ts_ns
    _groups: dict[tuple[str, ...], _Group] = field(default_factory=dict)
    _rng: random.Random = field(init=False)
    _dimensions: tuple[Callable[[FlowRecord], str], ...] = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._dimensions = tuple(DIMENSIONS[name] for name in self.by)

    def add(self, record: FlowRecord) -> None:
        """Count ``record`` in its group."""
        exchange = record.exchange
        self.records += 1
        ts = exchange.ts_ns
        if self.first_ns is None or ts < self.first_ns:
            self.first_ns = ts
        if self.last_ns is None or ts > self.last_ns:
            self.last_ns = ts
        group = self._group(tuple(dimension(record) for dimension in self._dimensions))
        group.count += 1
        status = exchange.status
        if status is Status.CLIENT_ERROR:
            group.client_errors += 1
        elif status is Status.SERVER_ERROR:
            group.server_errors += 1
        elif status is Status.TIMEOUT:
            group.timeouts += 1
        group.bytes += record_bytes(exchange)
        if exchange.latency_ns is not None:
            group.latencies.add(exchange.latency_ns)

    def _group(self, values: tuple[str, ...]) -> _Group:
        group = self._groups.get(values)
        if group is None:
            if len(self._groups) >= self.max_groups:
                values = (OTHER,) * len(values)
                group = self._groups.get(values)
            if group is None:
                group = _Group(Latencies(self.max_samples, self._rng))
                self._groups[values] = group
        return group

    @property
    def groups(self) -> int:
        """Groups so far (with :data:`OTHER`, when records went there)."""
        return len(self._groups)

    @property
    def span_s(self) -> float | None:
        """Seconds from the first record to the last (a capture's rate divides by this);
        None before two records of different times."""
        if self.first_ns is None or self.last_ns is None or self.last_ns == self.first_ns:
            return None
        return (self.last_ns - self.first_ns) / 1e9

    def rows(self, elapsed_s: float | None, sort: str = "count",
             top: int | None = None) -> list[Row]:  # fmt: skip
        """The groups as rows ordered by ``sort`` (a name of :data:`SORTS`), the first
        ``top`` of them (None: all); ``rate`` is ``count / elapsed_s``."""
        rows = [self._row(values, group, elapsed_s) for values, group in self._groups.items()]
        rows.sort(key=SORTS[sort])
        return rows if top is None else rows[:top]

    @staticmethod
    def _row(values: tuple[str, ...], group: _Group, elapsed_s: float | None) -> Row:
        latencies = group.latencies
        p50, p90, p99 = (latencies.percentile(p) for p in PERCENTILES)
        rate = group.count / elapsed_s if elapsed_s else None
        return Row(values, group.count, rate, group.client_errors, group.server_errors,
                   group.timeouts, group.bytes, latencies.seen, p50, p90, p99, latencies.max,
                   latencies.exact)  # fmt: skip

"""``libtrace stat``'s arithmetic: groups, counts, errors, percentiles, order, bounds, filters."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libtrace.flows import FlowRecord
from libtrace.parsers import Record, RedisRequest, RedisResponse, Status
from libtrace.stat import MAX_GROUPS, MAX_SAMPLES, Aggregator, RecordFilter, percentile
from libtrace.stat.aggregate import MAX_LATENCY_BYTES, OTHER, SORTS, Latencies


def reference(values: list[int], p: int) -> int:
    """The p-th percentile by its definition: the least value that at least p % of
    the values are at most (no ranks, no sorting tricks)."""
    return min(v for v in values if sum(x <= v for x in values) * 100 >= p * len(values))


@given(st.lists(st.integers(0, 10**12), min_size=1, max_size=300), st.integers(1, 100))
def test_percentile_is_the_nearest_rank_of_the_sorted_values(values: list[int], p: int) -> None:
    assert percentile(sorted(values), p) == reference(values, p)


@pytest.mark.parametrize(("values", "expected"), [
    ([5], (5, 5, 5)),
    (list(range(1, 101)), (50, 90, 99)),
    (list(range(1, 11)), (5, 9, 10)),
    ([1, 1, 1, 1000], (1, 1000, 1000)),
])  # fmt: skip
def test_percentiles_of_known_lists(values: list[int], expected: tuple[int, ...]) -> None:
    latencies = Latencies(MAX_SAMPLES, random.Random(0))
    for value in reversed(values):
        latencies.add(value)
    assert tuple(latencies.percentile(p) for p in (50, 90, 99)) == expected
    assert latencies.exact and latencies.max == max(values)


def test_beyond_the_capacity_a_uniform_sample_is_kept_and_the_max_stays_exact() -> None:
    capacity, n = 500, 20_000
    latencies = Latencies(capacity, random.Random(7))
    values = list(range(n))
    random.Random(1).shuffle(values)
    for value in values:
        latencies.add(value)
    assert len(latencies.samples) == capacity and latencies.seen == n
    assert not latencies.exact and latencies.max == n - 1
    # A uniform sample of 0..n-1: its median near n/2 (500 samples: within a few %).
    median = latencies.percentile(50)
    assert median is not None and abs(median - n / 2) < n * 0.08


def test_no_latency_no_percentile() -> None:
    latencies = Latencies(4, random.Random(0))
    assert latencies.percentile(50) is None and latencies.max is None and latencies.exact


def redis(command: str, ts_ns: int = 0, latency_ns: int | None = 1000, status: Status = Status.OK,
          size: int = 10, server: str = "127.0.0.1:6379") -> FlowRecord:  # fmt: skip
    request = RedisRequest(ts_ns=ts_ns, size=size, command=command)
    response = RedisResponse(ts_ns=ts_ns + (latency_ns or 0), size=5, type="simple_string") \
        if latency_ns is not None else None  # fmt: skip
    exchange = Record(protocol="redis", ts_ns=ts_ns, latency_ns=latency_ns, status=status,
                      request=request, response=response)  # fmt: skip
    return FlowRecord(exchange, "127.0.0.1:40000", server)


def test_groups_count_errors_timeouts_bytes_and_latencies() -> None:
    aggregator = Aggregator()
    for i in range(10):
        aggregator.add(redis("GET", ts_ns=i * 10**9, latency_ns=(i + 1) * 1000))
    aggregator.add(redis("SET", ts_ns=2 * 10**9, status=Status.CLIENT_ERROR))
    aggregator.add(redis("SET", ts_ns=3 * 10**9, status=Status.SERVER_ERROR))
    aggregator.add(redis("SET", ts_ns=4 * 10**9, latency_ns=None, status=Status.TIMEOUT))

    assert aggregator.records == 13 and aggregator.groups == 2
    assert aggregator.span_s == 9.0
    get, set_ = aggregator.rows(elapsed_s=2.0)
    assert get.group == ("redis", "GET") and set_.group == ("redis", "SET")
    assert (get.count, get.rate, get.errors, get.timeouts) == (10, 5.0, 0, 0)
    assert (get.p50_ns, get.p90_ns, get.p99_ns, get.max_ns) == (5000, 9000, 10000, 10000)
    assert get.bytes == 10 * 15 and get.latencies == 10 and get.exact
    assert (set_.count, set_.errors, set_.client_errors, set_.server_errors) == (3, 2, 1, 1)
    assert set_.timeouts == 1 and set_.latencies == 2 and set_.bytes == 2 * 15 + 10
    assert set_.to_json(aggregator.by) == {
        "protocol": "redis", "key": "SET", "count": 3, "rate": 1.5, "errors": 2,
        "client_errors": 1, "server_errors": 1, "timeouts": 1, "bytes": 40, "latencies": 2,
        "p50_ns": 1000, "p90_ns": 1000, "p99_ns": 1000, "max_ns": 1000, "exact": True}  # fmt: skip


def test_rows_are_sorted_largest_first_and_cut_to_the_top() -> None:
    aggregator = Aggregator()
    for command, count, latency in (("GET", 5, 10), ("SET", 3, 1000), ("INCR", 4, None)):
        for _ in range(count):
            aggregator.add(redis(command, latency_ns=latency, size=count))

    def keys(sort: str, top: int | None = None) -> list[str]:
        return [row.group[1] for row in aggregator.rows(None, sort, top)]

    assert keys("count") == ["GET", "INCR", "SET"]
    assert keys("p99") == ["SET", "GET", "INCR"]  # no latency: last
    assert keys("bytes") == ["GET", "SET", "INCR"]  # 5*(5+5), 3*(3+5), 4*4 (no response)
    assert keys("count", top=2) == ["GET", "INCR"]
    assert aggregator.rows(None)[0].rate is None  # no time given, no rate
    assert set(SORTS) == {"count", "errors", "p50", "p90", "p99", "max", "bytes"}


def test_ties_are_ordered_by_group() -> None:
    aggregator = Aggregator()
    for command in ("b", "c", "a"):
        aggregator.add(redis(command))
    assert [row.group[1] for row in aggregator.rows(None)] == ["A", "B", "C"]


def test_other_dimensions() -> None:
    aggregator = Aggregator(by=("server", "status"))
    aggregator.add(redis("GET", server="10.0.0.1:6379"))
    aggregator.add(redis("GET", server="10.0.0.2:6379", status=Status.CLIENT_ERROR))
    aggregator.add(redis("SET", server="10.0.0.2:6379", status=Status.CLIENT_ERROR))
    rows = {row.group: row.count for row in aggregator.rows(None)}
    assert rows == {("10.0.0.1:6379", "ok"): 1, ("10.0.0.2:6379", "client_error"): 2}


def test_groups_past_the_bound_are_counted_as_other() -> None:
    aggregator = Aggregator(max_groups=3)
    for i in range(10):
        aggregator.add(redis(f"CMD{i}"))
    rows = aggregator.rows(None)
    assert aggregator.records == 10 and aggregator.groups == 4
    other = [row for row in rows if row.group == (OTHER, OTHER)]
    assert len(other) == 1 and other[0].count == 7
    assert MAX_LATENCY_BYTES == (MAX_GROUPS + 1) * MAX_SAMPLES * 8 <= 64 << 20


@pytest.mark.parametrize(("latency", "size", "kept"), [
    (None, 100, False),  # unanswered: never slow
    (4_999_999, 100, False),
    (5_000_000, 99, False),
    (5_000_000, 100, True),
    (9_000_000, 500, True),
])  # fmt: skip
def test_the_filter_keeps_slow_and_large_records(latency: int | None, size: int,
                                                  kept: bool) -> None:  # fmt: skip
    record = redis("GET", latency_ns=latency, size=size - 5 if latency is not None else size)
    assert RecordFilter(slow_ns=5_000_000, min_bytes=100)(record) is kept
    assert RecordFilter()(record)  # no thresholds: every record

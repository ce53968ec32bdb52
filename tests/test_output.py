"""Files that hold records or payloads are their owner's alone (``libtrace.output``)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from libtrace.output import (
    PRIVATE_MODE,
    monotonic_to_epoch_ns,
    open_private,
    record_row,
    write_private,
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that lets everyone read new files: the mode must not come from the umask."""
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def test_a_new_file_is_created_0600(tmp_path: Path, open_umask: None) -> None:
    with open_private(tmp_path / "events") as out:
        out.write(b"payload")

    assert mode(tmp_path / "events") == PRIVATE_MODE == 0o600
    assert (tmp_path / "events").read_bytes() == b"payload"


def test_an_existing_readable_file_becomes_0600_and_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text("an older, longer report")
    path.chmod(0o644)

    write_private(path, "{}\n")

    assert mode(path) == 0o600 and path.read_text() == "{}\n"


def test_rows_show_the_wall_clock_of_captures_and_of_live_records() -> None:
    """A capture's ts_ns is epoch time, a live record's CLOCK_MONOTONIC: both rows
    show the local time of day, the live one through the clock offset."""
    epoch_ns = 1_765_000_000_123_456_789
    record = {"ts_ns": epoch_ns, "protocol": "redis", "client": "127.0.0.1:1",
              "server": "127.0.0.1:6379", "status": "ok", "latency_ns": 1_500_000,
              "request": {"command": "GET", "args": ["k"]}, "response": {"value": "v"}}  # fmt: skip
    expected = time.strftime("%H:%M:%S", time.localtime(epoch_ns // 10**9)) + ".123456"

    assert record_row(record).startswith(f"{expected}  redis")
    offset = monotonic_to_epoch_ns()
    assert abs(time.monotonic_ns() + offset - time.time_ns()) < 10**9
    live = {**record, "ts_ns": epoch_ns - offset}  # the same moment, as the kernel times it
    assert record_row(live, offset) == record_row(record)
    assert "1.500ms" in record_row(record) and "GET k  => v" in record_row(record)

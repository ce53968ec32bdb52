"""Files that hold records or payloads are their owner's alone (``libtrace.output``)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from libtrace.output import PRIVATE_MODE, open_private, write_private


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

"""The loopback capture (``libtrace.services.tcpdump``): its file holds every payload."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from libtrace.output import PRIVATE_MODE
from libtrace.services.tcpdump import capture

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump"),
]


def test_the_capture_is_0600_even_where_a_readable_file_was(tmp_path: Path) -> None:
    path = tmp_path / "wire.pcap"
    path.write_bytes(b"an older capture")
    path.chmod(0o644)

    with capture(path, "tcp port 9") as wire:
        wire.mark()  # a marker datagram is in the file: tcpdump wrote it

    assert stat.S_IMODE(path.stat().st_mode) == PRIVATE_MODE
    assert path.read_bytes()[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")  # a pcap now

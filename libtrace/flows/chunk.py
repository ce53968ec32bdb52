"""The one chunk type of the flow layer: in-order bytes of one sender, or a hole."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Chunk:
    """In-order bytes, or a hole of ``gap`` bytes (then ``data`` is empty)."""

    ts_ns: int
    data: bytes = b""
    gap: int = 0

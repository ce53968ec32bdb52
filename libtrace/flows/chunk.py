"""The one chunk type of the flow layer: in-order bytes of one sender, or a hole."""

from __future__ import annotations

from dataclasses import dataclass

from ..frozen import hand_init


@dataclass(frozen=True, slots=True)
class Chunk:
    """In-order bytes, or a hole of ``gap`` bytes (then ``data`` is empty)."""

    ts_ns: int
    data: bytes = b""
    gap: int = 0

    def __init__(self, ts_ns: int, data: bytes = b"", gap: int = 0) -> None:  # pragma: no cover
        # By hand, for speed once compiled: see libtrace/frozen.py.
        self.ts_ns = ts_ns  # type: ignore[misc]
        self.data = data  # type: ignore[misc]
        self.gap = gap  # type: ignore[misc]


hand_init(Chunk)

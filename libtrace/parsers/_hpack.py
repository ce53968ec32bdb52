"""An HPACK decoder that survives a dynamic table it never saw filled.

A capture that starts mid-connection, or loses bytes, misses the header
blocks that filled the peer's dynamic table.  This wraps ``hpack.Decoder``
(hpack 4.x) with a table that answers a reference to an unknown dynamic entry
with a placeholder instead of raising: the header is dropped from the result
and an error names the index, so the rest of the block still decodes.

Why indices stay right: new entries enter the dynamic table at its front
(index 62).  After :meth:`TolerantDecoder.reset` the table is empty, and
each entry added afterwards sits at the same index as in the peer's table;
only the older, unknown entries lie beyond our table's end, exactly where the
misses are reported.  A literal with an unknown indexed *name* still adds its
entry, so alignment holds.
"""

from __future__ import annotations

import hpack
from hpack.exceptions import HPACKError, InvalidTableIndex
from hpack.table import HeaderTable

from ._errors import MalformedError
from ._limits import MAX_HEADERS, MAX_HPACK_HEADER_LIST_BYTES, MAX_HPACK_TABLE_BYTES

#: Stands for a header name we cannot know; never a valid HTTP/2 name (uppercase).
UNKNOWN_NAME = b"<UNKNOWN>"


class _TolerantTable(HeaderTable):
    def __init__(self) -> None:
        super().__init__()
        self.misses: list[int] = []

    def get_by_index(self, index: int) -> tuple[bytes, bytes]:
        try:
            entry: tuple[bytes, bytes] = super().get_by_index(index)
        except InvalidTableIndex:
            if index <= 0:
                raise
            self.misses.append(index)
            return (UNKNOWN_NAME, b"")
        return entry


class TolerantDecoder:
    """Decode HPACK header blocks of one direction; see the module docstring."""

    def __init__(self) -> None:
        self._decoder = hpack.Decoder(max_header_list_size=MAX_HPACK_HEADER_LIST_BYTES)
        self.reset()

    def reset(self) -> None:
        """Forget the dynamic table (after a gap: its contents are unknown)."""
        self._table = _TolerantTable()
        self._decoder.header_table = self._table
        self._decoder.max_allowed_table_size = MAX_HPACK_TABLE_BYTES

    def decode(self, block: bytes) -> tuple[list[tuple[str, str]], tuple[str, ...]]:
        """Decode one complete header block.

        Returns:
            The headers that could be decoded, and one error per header that
            referred to an unknown dynamic table entry.

        Raises:
            MalformedError: the block is not valid HPACK (the table is then
                reset, since its state is unknown).
        """
        self._table.misses.clear()
        try:
            raw = self._decoder.decode(block, raw=True)
        except (HPACKError, ValueError, IndexError) as exc:
            self.reset()
            raise MalformedError(f"invalid HPACK block: {exc}") from None
        headers = [
            (bytes(name).decode("utf-8", "replace"), bytes(value).decode("utf-8", "replace"))
            for name, value in raw
            if bytes(name) != UNKNOWN_NAME
        ]
        misses = self._table.misses
        # One error per header, up to the headers a message keeps: a block of
        # one-byte references (thousands fit in the header list bound) must not
        # make as many strings.
        errors = [f"unknown HPACK dynamic table index {i} (capture started mid-connection)"
                  for i in misses[:MAX_HEADERS]]  # fmt: skip
        if len(misses) > MAX_HEADERS:
            errors.append(f"and {len(misses) - MAX_HEADERS} more unknown HPACK dynamic table "
                          "indexes")  # fmt: skip
        return headers, tuple(errors)

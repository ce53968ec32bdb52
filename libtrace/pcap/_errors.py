"""The offline reader's one error type."""

from __future__ import annotations

from ..errors import LibtraceError


class PcapError(LibtraceError):
    """The capture file cannot be read."""

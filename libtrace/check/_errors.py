"""The check's own error: its tools (tcpdump, the traffic child) could not do their part."""

from __future__ import annotations

from ..errors import LibtraceError


class CheckError(LibtraceError):
    """The differential check could not run."""

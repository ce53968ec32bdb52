"""The one error of the services package, and the log tail its message ends with."""

from __future__ import annotations

from ..errors import LibtraceError

#: Lines of a server's log quoted in an error: enough for the reason, short enough for one line.
LOG_TAIL_LINES = 3
#: Characters of log quoted at most, so that the message stays one readable line.
LOG_TAIL_CHARS = 400


class ServiceError(LibtraceError):
    """A protocol server, its image or the Docker daemon could not be started."""


def log_tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last non-empty ``lines`` of ``text`` joined with `` | `` (one line, bounded)."""
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    tail = " | ".join(kept) or "(empty log)"
    return tail if len(tail) <= LOG_TAIL_CHARS else "…" + tail[-LOG_TAIL_CHARS:]


def failure(what: str, log: str) -> ServiceError:
    """A :class:`ServiceError` saying ``what`` failed, ending with the tail of ``log``."""
    return ServiceError(f"{what}; log: {log_tail(log)}")

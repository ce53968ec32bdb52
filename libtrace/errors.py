"""The one exception tree of libtrace, rooted at :class:`LibtraceError`.

Library code raises these and nothing else on expected failures; foreign
errors (ctypes, OSError from procfs, pyelftools) are translated at the one
boundary that meets them.  Only the CLI turns them into messages and exit
codes.  Each class's docstring is its default message.
"""

from __future__ import annotations

import enum
import errno as _errno
import os


class ExitCode(enum.IntEnum):
    """The exit codes of every ``libtrace`` command; :mod:`libtrace.cli` maps errors to them
    and each command's ``--help`` lists them with their :attr:`meaning`."""

    OK = 0
    FAILED = 1
    USAGE = 2
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        """What this code says, as ``--help`` and the README put it."""
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.OK: "done: the trace ran, the check agrees, every matrix cell passed",
    ExitCode.FAILED: "done, and the answer is no (a check differs, a matrix cell fails, a "
                     "fixture's oracle disagrees), or this machine cannot trace (privileges, "
                     "kernel features)",
    ExitCode.USAGE: "bad input (arguments, paths, files, a kernel package or spec), or a check "
                    "scenario that cannot run (its server, image, traffic or capture failed)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C) before anything started",
}  # fmt: skip


def error_line(message: object) -> str:
    """The one style of an error a command prints: ``libtrace: error: MESSAGE``."""
    return f"libtrace: error: {message}"


def print_error(message: object) -> None:
    """Print :func:`error_line` on stderr."""
    import sys

    print(error_line(message), file=sys.stderr)


class LibtraceError(Exception):
    """libtrace failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(LibtraceError, ValueError):
    """The configuration is invalid."""


class ProtocolError(LibtraceError):
    """The bytes do not follow the protocol."""


class GoBinaryError(LibtraceError):
    """The file is not a Go binary libtrace can inspect."""


class VmError(LibtraceError):
    """The virtual machine could not be set up or run."""


class BpfError(LibtraceError, OSError):
    """A BPF operation failed.

    Carries the errno and the operation, so callers can tell a missing
    privilege (EPERM) from a missing kernel feature (EINVAL, ENOENT).
    """

    def __init__(self, operation: str, err: int, detail: str | None = None) -> None:
        reason = os.strerror(err) if err else "unknown error"
        message = f"{operation} failed: {reason}"
        if detail:
            message += f" ({detail})"
        # OSError.__init__ (reached through LibtraceError) resets errno and
        # strerror, so set them after it.
        LibtraceError.__init__(self, message)
        self.operation = operation
        self.errno = err
        self.strerror = reason

    def __str__(self) -> str:
        # OSError would print "[Errno N] reason" and drop the operation.
        return str(self.args[0])

    @property
    def is_permission(self) -> bool:
        """True when the failure means missing privileges."""
        return self.errno in (_errno.EPERM, _errno.EACCES)


class PrivilegeError(BpfError):
    """Tracing needs root or CAP_BPF with CAP_PERFMON."""

    def __init__(self, operation: str, err: int = _errno.EPERM) -> None:
        super().__init__(operation, err, "run as root, or grant CAP_BPF and CAP_PERFMON")


class UnsupportedKernelError(LibtraceError):
    """This kernel lacks a feature the tracer needs."""

"""The VM layer's branch of the exception tree: every class is a :class:`VmError`.

Each docstring is the default message; callers pass one clear sentence that
names the file, package or module at fault.  :class:`DownloadError` is the
host layer's (its apt root raises it), re-exported here as the VM layer's own;
the host's :class:`~libtrace.host.errors.PackageNotFoundError` becomes a
:class:`KernelNotFoundError` where the VM layer downloads a kernel or its source.
"""

from __future__ import annotations

from ..errors import VmError
from ..host.errors import DownloadError as DownloadError


class KernelNotFoundError(VmError, LookupError):
    """No kernel matches the given specification."""


class KernelPackageError(VmError):
    """The kernel package or directory is unusable (corrupt, truncated or incomplete)."""


class MissingModuleError(VmError):
    """A kernel module the guest needs is neither built in nor shipped."""

    def __init__(self, module: str, kernel: str, detail: str = "") -> None:
        message = f"missing module {module}: kernel {kernel} neither builds it in nor ships it"
        super().__init__(message + (f" ({detail})" if detail else ""))
        self.module = module


class InitramfsError(VmError):
    """The initramfs could not be built."""

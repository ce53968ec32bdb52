"""The host layer's errors: a package that cannot be downloaded or found.

Both are :class:`~libtrace.errors.VmError` subclasses, as they were when the
apt root lived in the VM layer: the ``vm`` and ``kernels`` commands choose
their exit code by that class, and :mod:`libtrace.vm` re-exports
:class:`DownloadError` as its own.  A failing tool raises whatever class its
caller names (:func:`libtrace.host.tools.run_tool`).
"""

from __future__ import annotations

from ..errors import VmError


class DownloadError(VmError):
    """A package could not be downloaded."""


class PackageNotFoundError(VmError, LookupError):
    """The configured archive has no such package version."""

"""The VM layer: kernels from a catalog or the user, an initramfs, and QEMU runs.

``resolve("debian-6.1")`` gives a bootable :class:`Kernel`; ``run(kernel,
"python3 -m pytest …")`` boots it with the host's root filesystem, runs the
command and returns a :class:`RunResult` with an explicit :class:`Verdict`.
"""

from ._errors import (
    DownloadError,
    InitramfsError,
    KernelNotFoundError,
    KernelPackageError,
    MissingModuleError,
)
from .initramfs import build_initramfs, resolve_modules
from .kernels import Kernel, cached, default_cache_dir, known_kernels, resolve
from .qemu import RunResult, Verdict, VmSpec, build_qemu_argv, kvm_works, run, spec_for

__all__ = [
    "DownloadError",
    "InitramfsError",
    "Kernel",
    "KernelNotFoundError",
    "KernelPackageError",
    "MissingModuleError",
    "RunResult",
    "Verdict",
    "VmSpec",
    "build_initramfs",
    "build_qemu_argv",
    "cached",
    "default_cache_dir",
    "known_kernels",
    "kvm_works",
    "resolve",
    "resolve_modules",
    "run",
    "spec_for",
]

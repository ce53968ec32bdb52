"""Go test binaries: built once per toolchain and cached (see toolchains.build).

The first run downloads every Debian Go toolchain (about 70 MB each) and
builds the programs with each; later runs reuse ``~/.cache/libtrace/go``.
``LIBTRACE_GO_VERSIONS=1.15,1.21`` limits the toolchains a run uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from libtrace.host import DownloadError
from libtrace.host.go_toolchains import ToolchainError, build, selected_versions

PROGRAMS = Path(__file__).parent / "programs"


def go_versions() -> tuple[str, ...]:
    return selected_versions()


_unavailable: dict[str, str] = {}


def unobtainable(exc: ToolchainError) -> bool:
    """True when the toolchain could not be fetched here: the apt layer could not
    download it (no archive configured or reachable), or the archive has no such version."""
    return isinstance(exc.__cause__, DownloadError) or "is not packaged in" in str(exc)


def go_binary(program: str, version: str, *, stripped: bool, pie: bool = False) -> Path:
    """The cached build, or a skip naming why the toolchain cannot be had."""
    if version in _unavailable:
        pytest.skip(_unavailable[version])
    try:
        return build(PROGRAMS / program, version, stripped, pie=pie)
    except ToolchainError as exc:
        if not unobtainable(exc):
            raise  # downloaded but unusable, or our program failed to build: a real failure
        _unavailable[version] = f"Go {version} toolchain unavailable: {exc}"
        pytest.skip(_unavailable[version])

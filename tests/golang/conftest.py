"""Go test binaries: built once per toolchain and cached (see toolchains.build).

The first run downloads every Debian Go toolchain (about 70 MB each) and
builds the programs with each; later runs reuse ``~/.cache/libtrace/go``.
``LIBTRACE_GO_VERSIONS=1.15,1.21`` limits the toolchains a run uses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from libtrace.vm.go_toolchains import ToolchainError, build, selected_versions

PROGRAMS = Path(__file__).parent / "programs"


def go_versions() -> tuple[str, ...]:
    return selected_versions()


_unavailable: dict[str, str] = {}


def go_binary(program: str, version: str, *, stripped: bool, pie: bool = False) -> Path:
    """The cached build, or a skip naming why the toolchain cannot be had."""
    if version in _unavailable:
        pytest.skip(_unavailable[version])
    try:
        return build(PROGRAMS / program, version, stripped, pie=pie)
    except ToolchainError as exc:
        if "go build" in str(exc):
            raise  # a toolchain we have failed to build our program: a real failure
        _unavailable[version] = f"Go {version} toolchain unavailable: {exc}"
        pytest.skip(_unavailable[version])

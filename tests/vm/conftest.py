"""Fixtures of the VM tests: catalog kernels, downloaded once into the real cache.

The kernels go to the default cache (``~/.cache/libtrace/kernels``) on purpose:
a second run of the suite downloads nothing.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from libtrace.vm import Kernel, resolve

_resolved: dict[str, Kernel] = {}


@pytest.fixture(scope="session")
def catalog_kernel() -> Callable[[str], Kernel]:
    """Resolve a catalog name once per session (downloading it on the first run)."""

    def get(name: str) -> Kernel:
        if name not in _resolved:
            _resolved[name] = resolve(name)
        return _resolved[name]

    return get


@pytest.fixture(scope="session")
def kernel_61(catalog_kernel: Callable[[str], Kernel]) -> Kernel:
    return catalog_kernel("debian-6.1")


def make_deb(
    tmp: Path, package: str, version: str, files: dict[str, bytes], name: str = "k.deb"
) -> Path:
    """Build a real .deb with dpkg-deb -b holding ``files`` (path → content)."""
    tree = tmp / f"tree-{package}-{version}"
    if tree.exists():
        shutil.rmtree(tree)
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: amd64\n"
        "Maintainer: libtrace tests <tests@localhost>\nDescription: test kernel\n"
    )
    for rel, data in files.items():
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    deb = tmp / name
    subprocess.run(
        ["dpkg-deb", "-Zgzip", "-b", str(tree), str(deb)], check=True, capture_output=True
    )
    return deb

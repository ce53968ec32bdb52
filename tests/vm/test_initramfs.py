"""Module chains from real modules.dep files, and the image checked with cpio as the oracle."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from libtrace.vm import Kernel, MissingModuleError, build_initramfs, resolve_modules
from libtrace.vm._errors import InitramfsError
from libtrace.vm.initramfs import INIT_SCRIPT, module_name

# The chains differ between versions: 5.10 needs fscache, 6.1 netfs and fscache and
# split virtio-pci into three modules, 6.12 builds virtio in and compresses with xz.
EXPECTED = {
    "debian-5.10": [
        "virtio",
        "virtio_ring",
        "virtio_pci",
        "9pnet",
        "9pnet_virtio",
        "fscache",
        "9p",
        "overlay",
    ],
    "debian-6.1": [
        "virtio_ring",
        "virtio",
        "virtio_pci_modern_dev",
        "virtio_pci_legacy_dev",
        "virtio_pci",
        "9pnet",
        "9pnet_virtio",
        "netfs",
        "fscache",
        "9p",
        "overlay",
    ],
    "debian-6.12": ["netfs", "9pnet", "9pnet_virtio", "9p", "overlay"],
}


def dependencies(modules: Path) -> dict[str, set[str]]:
    deps = {}
    for line in (modules / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[module_name(path)] = {module_name(d) for d in rest.split()}
    return deps


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_module_chain_of_each_debian_kernel(
    name: str, catalog_kernel: Callable[[str], Kernel]
) -> None:
    kernel = catalog_kernel(name)
    assert kernel.modules is not None
    order = resolve_modules(kernel.modules)
    assert [module_name(p) for p in order] == EXPECTED[name]
    assert all((kernel.modules / p).is_file() for p in order)
    # Every module comes after everything modules.dep says it needs.
    deps = dependencies(kernel.modules)
    loaded: set[str] = set()
    builtin = {module_name(p) for p in (kernel.modules / "modules.builtin").read_text().split()}
    for path in order:
        assert deps[module_name(path)] - builtin <= loaded, path
        loaded.add(module_name(path))
    if name == "debian-6.12":
        assert all(p.endswith(".ko.xz") for p in order)
        assert "virtio_pci" in builtin


def test_a_kernel_without_modules_needs_none() -> None:
    assert resolve_modules(None) == []


def filtered_modules(source: Path, dest: Path, drop: str) -> Path:
    """A copy of modules.dep/.builtin without the lines that mention ``drop``."""
    dest.mkdir(parents=True)
    for name in ("modules.dep", "modules.builtin"):
        lines = (source / name).read_text().splitlines()
        kept = [line for line in lines if f"/{drop}.ko" not in line.split(":")[0]]
        (dest / name).write_text("\n".join(kept) + "\n")
    return dest


def test_a_missing_module_is_named(tmp_path: Path, kernel_61: Kernel) -> None:
    assert kernel_61.modules is not None
    modules = filtered_modules(kernel_61.modules, tmp_path / "mods", "9p")
    with pytest.raises(MissingModuleError, match="missing module 9p") as info:
        resolve_modules(modules, kernel="broken")
    assert info.value.module == "9p"


def test_a_missing_dependency_names_who_needs_it(tmp_path: Path, kernel_61: Kernel) -> None:
    assert kernel_61.modules is not None
    modules = filtered_modules(kernel_61.modules, tmp_path / "mods", "9pnet")
    with pytest.raises(MissingModuleError, match=r"missing module 9pnet\b.*needed by"):
        resolve_modules(modules)


def test_no_modules_dep_is_an_initramfs_error(tmp_path: Path) -> None:
    with pytest.raises(InitramfsError, match=r"modules\.dep"):
        resolve_modules(tmp_path)


def unpack(image: Path, dest: Path) -> list[str]:
    """Unpack with GNU cpio (the oracle) and return its listing."""
    dest.mkdir()
    proc = subprocess.run(
        ["cpio", "-idmv", "--no-absolute-filenames"],
        input=image.read_bytes(),
        cwd=dest,
        capture_output=True,
        check=True,
    )
    return [line for line in proc.stderr.decode().splitlines() if "block" not in line]


@pytest.mark.parametrize("name", ["debian-6.1", "debian-6.12"])
def test_the_image_holds_busybox_init_and_plain_modules(
    name: str, tmp_path: Path, catalog_kernel: Callable[[str], Kernel]
) -> None:
    kernel = catalog_kernel(name)
    image = build_initramfs(kernel, tmp_path / "out")
    assert image.parent == tmp_path / "out" and image.name.startswith("initramfs-")
    listing = unpack(image, tmp_path / "x")
    root = tmp_path / "x"
    assert {"init", "bin/busybox", "bin/sh", "dev/console", "modules.list"} <= set(listing)
    assert (root / "init").read_text() == INIT_SCRIPT
    assert (root / "init").stat().st_mode & 0o111
    assert (root / "bin/sh").is_symlink()
    loaded = (root / "modules.list").read_text().split()
    assert loaded == [f"{m}.ko" for m in EXPECTED[name]]
    for module in loaded:
        assert (root / "lib/modules" / module).read_bytes()[:4] == b"\x7fELF", module


def test_the_image_is_cached_by_content(tmp_path: Path, kernel_61: Kernel) -> None:
    first = build_initramfs(kernel_61, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert build_initramfs(kernel_61, tmp_path) == first
    assert first.stat().st_mtime_ns == stamp
    # Another kernel (other modules) gets another image.
    assert kernel_61.modules is not None
    other_mods = tmp_path / "mods"
    shutil.copytree(kernel_61.modules, other_mods, symlinks=True)
    (other_mods / "kernel/fs/overlayfs/overlay.ko").write_bytes(b"\x7fELF changed")
    other = dataclasses.replace(kernel_61, modules=other_mods)
    assert build_initramfs(other, tmp_path) != first


def test_a_file_target_is_rebuilt_only_when_its_key_differs(
    tmp_path: Path, kernel_61: Kernel
) -> None:
    target = tmp_path / "initrd.cpio"
    assert build_initramfs(kernel_61, target) == target
    key = (tmp_path / "initrd.cpio.key").read_text()
    stamp = target.stat().st_mtime_ns
    build_initramfs(kernel_61, target)
    assert target.stat().st_mtime_ns == stamp
    (tmp_path / "initrd.cpio.key").write_text("stale\n")
    build_initramfs(kernel_61, target)
    assert (tmp_path / "initrd.cpio.key").read_text() == key


def test_the_host_kernel_has_no_initramfs(tmp_path: Path) -> None:
    host = Kernel(name="host", release="", version="", source="host", vmlinuz=None, modules=None)
    with pytest.raises(InitramfsError):
        build_initramfs(host, tmp_path)

"""Kernel sources: the Debian catalog (real downloads), .deb files, URLs, directories, images."""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from libtrace.errors import VmError
from libtrace.host.apt import PackageVersion
from libtrace.host.cache import MARKER
from libtrace.host.errors import PackageNotFoundError
from libtrace.vm import (
    DownloadError,
    Kernel,
    KernelNotFoundError,
    KernelPackageError,
    cached,
    kernels,
    known_kernels,
    resolve,
)
from libtrace.vm.kernels import image_release

from ..serving import served
from .conftest import make_deb

CATALOG = {
    # name: (release pattern, upstream prefix, suites)
    "debian-5.10": (r"5\.10\.0-\d+-amd64", "5.10.", {"bullseye", "bullseye-security"}),
    "debian-6.1": (r"6\.1\.0-\d+-amd64", "6.1.", {"bookworm", "bookworm-security"}),
    "debian-6.12": (
        r"6\.12\.\d+\+deb1[23][.\d]*-amd64",
        "6.12.",
        {"trixie", "trixie-security", "bookworm-backports"},
    ),
}


def test_the_host_kernel() -> None:
    kernel = resolve("host")
    assert kernel.is_host and kernel.name == "host" and kernel.source == "host"
    assert kernel.release == os.uname().release
    assert kernel.vmlinuz is None and kernel.modules is None
    assert cached("host") == kernel


@pytest.mark.parametrize("spec", ["nope", "debian-4.19", "debian-9.9.9", "/no/such/vmlinuz"])
def test_an_unknown_spec_is_a_lookup_error(spec: str) -> None:
    with pytest.raises(KernelNotFoundError) as info:
        resolve(spec)
    assert isinstance(info.value, VmError) and isinstance(info.value, LookupError)
    assert "\n" not in str(info.value)


class _ArchiveWithoutTheImage:
    """An apt root that lists one debian-6.1 image, whose download apt cannot find."""

    IMAGE = PackageVersion("linux-image-6.1.0-99-amd64", "6.1.999-1", "bookworm")

    def __init__(self, root: Path, suites: tuple[str, ...] = ()) -> None:
        pass

    def update(self, **_: object) -> None:
        pass

    def versions(self, pattern: re.Pattern[str]) -> list[PackageVersion]:
        return [self.IMAGE] if pattern.fullmatch(self.IMAGE.name) else []

    def download(self, package: str, version: str, *_: object) -> Path:
        raise PackageNotFoundError(f"no package {package} {version} in ('bookworm',)")


def test_a_package_apt_cannot_find_is_a_kernel_not_found_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host's apt root knows packages, not kernels: the VM layer says which
    (and the commands exit with the usage code for it, as for any unknown kernel)."""
    monkeypatch.setattr(kernels, "AptRoot", _ArchiveWithoutTheImage)
    missing = re.escape("no package linux-image-6.1.0-99-amd64 6.1.999-1")
    with pytest.raises(KernelNotFoundError, match=missing) as info:
        resolve("debian-6.1", cache_dir=tmp_path)
    assert isinstance(info.value.__cause__, PackageNotFoundError)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_catalog_kernels_download_extract_and_depmod(
    name: str, catalog_kernel: Callable[[str], Kernel]
) -> None:
    release_re, prefix, suites = CATALOG[name]
    kernel = catalog_kernel(name)
    assert kernel.name == name and not kernel.is_host
    assert re.fullmatch(release_re, kernel.release), kernel.release
    assert kernel.version.startswith(prefix)
    assert kernel.source.removeprefix("debian:") in suites
    assert kernel.vmlinuz is not None and kernel.vmlinuz.is_file()
    assert kernel.modules is not None and (kernel.modules / "modules.dep").is_file()
    assert kernel.modules.name == kernel.release
    assert image_release(kernel.vmlinuz)[0] == kernel.release
    assert cached(name) == kernel
    # Its point release is known by name too, and resolves to the same files.
    point = cached(f"debian-{kernel.version}")
    assert point is not None and point.vmlinuz == kernel.vmlinuz


def test_known_kernels_lists_the_catalog_and_5_10_point_releases(
    catalog_kernel: Callable[[str], Kernel],
) -> None:
    catalog_kernel("debian-5.10")  # makes sure package lists are cached
    names = known_kernels()
    assert names[:4] == ["host", "debian-5.10", "debian-6.1", "debian-6.12"]
    points = [n for n in names if re.fullmatch(r"debian-5\.10\.\d+", n)]
    assert len(points) >= 2
    assert f"debian-{catalog_kernel('debian-5.10').version}" in points


# --- .deb files --------------------------------------------------------------------------


def fake_kernel_files(release: str = "9.9.9-test") -> dict[str, bytes]:
    return {
        f"boot/vmlinuz-{release}": b"not really a kernel",
        f"lib/modules/{release}/modules.order": b"",
    }


def test_a_corrupt_deb_is_a_package_error(tmp_path: Path) -> None:
    junk = tmp_path / "linux-image-junk.deb"
    junk.write_bytes(b"!<arch>\nthis is not a debian package\n" * 10)
    with pytest.raises(KernelPackageError, match="is not a valid Debian package") as info:
        resolve(str(junk), cache_dir=tmp_path / "cache")
    assert "\n" not in str(info.value)


def test_a_truncated_deb_is_a_package_error(tmp_path: Path) -> None:
    files = fake_kernel_files()
    files["boot/blob"] = os.urandom(2 << 20)  # incompressible, so truncation hits data.tar
    deb = make_deb(tmp_path, "linux-image-9.9.9-test", "9.9.9-1", files)
    data = deb.read_bytes()
    deb.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(KernelPackageError, match="corrupt or truncated"):
        resolve(str(deb), cache_dir=tmp_path / "cache")


def test_a_missing_deb_is_a_package_error(tmp_path: Path) -> None:
    with pytest.raises(KernelPackageError, match="does not exist"):
        resolve(str(tmp_path / "linux-image-gone.deb"), cache_dir=tmp_path)


def test_a_deb_without_a_kernel_says_so(tmp_path: Path) -> None:
    deb = make_deb(tmp_path, "linux-image-amd64", "6.1.1-1", {"usr/share/doc/x": b"x"})
    with pytest.raises(KernelPackageError, match="contains no vmlinuz"):
        resolve(str(deb), cache_dir=tmp_path / "cache")


def test_a_deb_is_extracted_once_and_verified_by_its_marker(tmp_path: Path) -> None:
    deb = make_deb(tmp_path, "linux-image-9.9.9-test", "9.9.9-1", fake_kernel_files())
    cache = tmp_path / "cache"
    kernel = resolve(str(deb), cache_dir=cache)
    assert kernel.release == "9.9.9-test" and kernel.version == "9.9.9"
    assert kernel.source == f"deb:{deb}" and kernel.name == str(deb)
    assert kernel.modules is not None and (kernel.modules / "modules.dep").is_file()
    assert kernel.vmlinuz is not None
    entry = cache / "linux-image-9.9.9-test_9.9.9-1"
    marker = entry / MARKER
    stamp = marker.stat().st_mtime_ns
    assert resolve(str(deb), cache_dir=cache) == kernel
    assert marker.stat().st_mtime_ns == stamp, "a valid entry must not be extracted again"
    # A crash mid-extraction leaves no marker, and the next resolve starts over.
    marker.unlink()
    kernel.vmlinuz.unlink()
    assert resolve(str(deb), cache_dir=cache) == kernel
    assert marker.is_file() and kernel.vmlinuz.is_file()


def test_two_concurrent_resolves_share_one_extraction(tmp_path: Path) -> None:
    deb = make_deb(tmp_path, "linux-image-9.9.9-test", "9.9.9-1", fake_kernel_files())
    results: list[Kernel | BaseException] = []

    def worker() -> None:
        try:
            results.append(resolve(str(deb), cache_dir=tmp_path / "cache"))
        except BaseException as exc:  # pragma: no cover - reported below
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4 and all(r == results[0] for r in results), results


# --- URLs --------------------------------------------------------------------------------


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served on the loopback, and its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    with served(root) as base:
        yield root, base


def test_a_url_is_downloaded_and_extracted(tmp_path: Path, http_dir: tuple[Path, str]) -> None:
    root, base = http_dir
    make_deb(root, "linux-image-9.9.9-test", "9.9.9-1", fake_kernel_files(), name="k.deb")
    kernel = resolve(f"{base}/k.deb", cache_dir=tmp_path / "cache")
    assert kernel.release == "9.9.9-test" and kernel.source == f"url:{base}/k.deb"
    with pytest.raises(DownloadError, match="could not download"):
        resolve(f"{base}/missing.deb", cache_dir=tmp_path / "cache")


# --- directories and images --------------------------------------------------------------


def test_a_directory_with_vmlinuz_and_modules(tmp_path: Path, kernel_61: Kernel) -> None:
    assert kernel_61.vmlinuz is not None and kernel_61.modules is not None
    tree = tmp_path / "tree"
    (tree / "boot").mkdir(parents=True)
    (tree / "lib" / "modules").mkdir(parents=True)
    (tree / "boot" / kernel_61.vmlinuz.name).symlink_to(kernel_61.vmlinuz)
    (tree / "lib" / "modules" / kernel_61.release).symlink_to(kernel_61.modules)
    kernel = resolve(str(tree))
    assert (kernel.release, kernel.version) == (kernel_61.release, kernel_61.version)
    assert kernel.source == f"dir:{tree}" and kernel.modules is not None


def test_a_vmlinuz_finds_its_modules_beside_it(tmp_path: Path, kernel_61: Kernel) -> None:
    assert kernel_61.vmlinuz is not None
    kernel = resolve(str(kernel_61.vmlinuz))
    assert kernel.release == kernel_61.release and kernel.version == kernel_61.version
    assert kernel.modules == kernel_61.modules
    assert kernel.source == f"vmlinuz:{kernel_61.vmlinuz}"
    alone = tmp_path / "bzImage"
    shutil.copy(kernel_61.vmlinuz, alone)
    bare = resolve(str(alone))
    assert bare.release == kernel_61.release and bare.modules is None


def test_a_file_that_is_no_kernel_image_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "vmlinuz-1.2.3"
    fake.write_bytes(b"\0" * 4096)
    with pytest.raises(KernelPackageError, match="not an x86 bzImage"):
        resolve(str(fake))

"""The kernel catalog: turn a specification into a bootable :class:`Kernel`.

A specification names a kernel in one of six ways, each handled by a small
source class in :data:`SOURCES` (tried in order, first claim wins):

``host``
    the running kernel; the payload runs directly on this machine.
``debian-5.10``, ``debian-6.1``, ``debian-6.12``, ``debian-5.10.223``
    the newest generic ``-amd64`` image of a Debian series (or one point
    release of it), found in a private apt root and fetched with
    ``apt-get download`` from the mirror the system's apt configuration names.
a path to a ``.deb`` / an ``http(s)://`` URL of a ``.deb``
    a ``linux-image-*`` package, extracted with ``dpkg-deb -x``.
a directory
    holding ``vmlinuz-<release>`` (or ``boot/vmlinuz-<release>``) and
    ``lib/modules/<release>`` (or ``usr/lib/modules/<release>``).
a vmlinuz file
    with a modules directory beside it, or none (everything built in).

Packages are extracted into the cache (``~/.cache/libtrace/kernels`` or
``$LIBTRACE_CACHE_DIR/kernels``) keyed by package name and version, with
``depmod -b`` run on the modules; see ``_cache.py`` for locking and markers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..host.apt import AptRoot, PackageVersion, compare_versions
from ..host.cache import cache_dir as host_cache_dir
from ..host.cache import locked
from ..host.errors import PackageNotFoundError
from . import _cache
from ._errors import DownloadError, KernelNotFoundError, KernelPackageError

Progress = Callable[[str], None]

#: Seconds a URL download may stall before it fails.
URL_TIMEOUT_S = 120


@dataclass(frozen=True, slots=True, kw_only=True)
class Kernel:
    """A kernel ready to boot (or the host's own kernel)."""

    #: Row name: ``host``, a catalog name such as ``debian-6.1``, or the spec the user gave.
    name: str
    #: ``uname -r`` of the kernel, e.g. ``5.10.0-35-amd64`` ("" when unknown).
    release: str
    #: Upstream version, e.g. ``5.10.237``.
    version: str
    #: ``host``, ``debian:<suite>``, ``deb:<path>``, ``dir:<path>``, ``vmlinuz:<path>``
    #: or ``url:<url>``.
    source: str
    #: The bootable image; None for the host.
    vmlinuz: Path | None
    #: The ``lib/modules/<release>`` directory (depmod run on it); None for the host
    #: or a kernel with everything built in.
    modules: Path | None

    @property
    def is_host(self) -> bool:
        """True for the running kernel, where payloads run without a VM."""
        return self.source == "host"


def default_cache_dir() -> Path:
    """Where kernels are cached.

    ``$LIBTRACE_CACHE_DIR/kernels`` when set, else ``libtrace/kernels`` under
    ``$XDG_CACHE_HOME`` or ``~/.cache``.  Initramfs and vmlinux images go beside it.
    """
    return host_cache_dir("kernels")


def image_release(vmlinuz: Path) -> tuple[str, str]:
    """Read ``(release, full version string)`` from a bzImage's setup header.

    Raises:
        KernelPackageError: the file is not an x86 bzImage.
    """
    try:
        with open(vmlinuz, "rb") as f:
            head = f.read(1 << 16)
    except OSError as exc:
        raise KernelPackageError(f"{vmlinuz} cannot be read ({exc.strerror})") from exc
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        raise KernelPackageError(f"{vmlinuz} is not an x86 bzImage kernel")
    offset = int.from_bytes(head[0x20E:0x210], "little") + 0x200
    text = head[offset : head.find(b"\0", offset)].decode("ascii", "replace")
    return (text.split() or [""])[0], text


def _version_from(text: str, release: str) -> str:
    """Upstream version from a kernel version string ("Debian 6.1.158-1" wins)."""
    match = re.search(r"Debian (\d+\.\d+\.\d+)", text) or re.match(r"(\d+\.\d+(?:\.\d+)?)", release)
    return match.group(1) if match else ""


def _from_entry(name: str, source: str, entry: _cache.Entry) -> Kernel:
    return Kernel(
        name=name,
        release=entry.release,
        version=_cache.upstream_version(entry.version),
        source=source,
        vmlinuz=entry.vmlinuz,
        modules=entry.modules,
    )


def _deb_kernel(
    name: str, source: str, deb: Path, cache: Path, progress: Progress | None
) -> Kernel:
    package, version = _cache.deb_fields(deb)
    entry_dir = cache / _cache.entry_key(package, version)
    with locked(entry_dir):
        entry = _cache.read_entry(entry_dir) or _cache.extract_deb(
            deb, entry_dir, package, version, progress
        )
    return _from_entry(name, source, entry)


# --- the catalog ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Series:
    """One catalog row: a kernel series and the suites it comes from."""

    packages: re.Pattern[str]
    suites: tuple[str, ...]


#: The catalog: generic ``-amd64`` images only (the ``-cloud`` flavour has no 9p).
CATALOG: dict[str, Series] = {
    "debian-5.10": Series(
        re.compile(r"linux-image-5\.10\.0-\d+-amd64"), ("bullseye", "bullseye-security")
    ),
    "debian-6.1": Series(
        re.compile(r"linux-image-6\.1\.0-\d+-amd64"), ("bookworm", "bookworm-security")
    ),
    "debian-6.12": Series(
        re.compile(r"linux-image-6\.12\.\d+\+deb1[23][.\d]*-amd64"),
        ("trixie", "trixie-security", "bookworm-backports"),
    ),
    # Newer series come from trixie-backports, sid and experimental.
    **{
        f"debian-{series}": Series(
            re.compile(rf"linux-image-{re.escape(series)}(\.\d+)?(\+deb1\d)?-amd64"),
            ("trixie-backports", "sid", "experimental"),
        )
        # 6.19, 7.0 and 7.1 are left out: their images need linux-modules-*
        # packages the mirror no longer carries (seen 2026-11-25).
        for series in ("6.16", "6.17", "6.18", "7.2", "7.3")
    },
}

#: A point release of a catalog series, e.g. ``debian-5.10.223``.
POINT_RE = re.compile(r"(debian-\d+\.\d+)\.(\d+)")

#: The series whose point releases :func:`known_kernels` lists.
LISTED_POINT_SERIES = ("debian-5.10",)


def _catalog_lookup(spec: str) -> tuple[Series, str | None] | None:
    if spec in CATALOG:
        return CATALOG[spec], None
    match = POINT_RE.fullmatch(spec)
    if match and match.group(1) in CATALOG:
        return CATALOG[match.group(1)], f"{match.group(1)[len('debian-') :]}.{match.group(2)}"
    return None


def _candidates(apt: AptRoot, series: Series, upstream: str | None) -> list[PackageVersion]:
    found = [
        v
        for v in apt.versions(series.packages)
        if v.suite in series.suites
        and (upstream is None or _cache.upstream_version(v.version) == upstream)
    ]
    best: dict[str, PackageVersion] = {}
    for v in found:  # one row per upstream version: the newest Debian revision
        key = _cache.upstream_version(v.version)
        if key not in best or compare_versions(v.version, best[key].version) > 0:
            best[key] = v
    return sorted(best.values(), key=lambda v: _VersionKey(v.version))


class _VersionKey:
    """Sort key that orders Debian versions as dpkg does."""

    __slots__ = ("version",)

    def __init__(self, version: str) -> None:
        self.version = version

    def __lt__(self, other: _VersionKey) -> bool:
        return compare_versions(self.version, other.version) < 0


def _pointer(cache: Path, name: str) -> Path:
    return cache / "resolved" / f"{name}.json"


def cached(spec: str, *, cache_dir: Path | None = None) -> Kernel | None:
    """The kernel a catalog name last resolved to, if it is still in the cache.

    Never touches the network.  ``host`` is always available; other specs return None.
    """
    if spec == "host":
        return _host_kernel()
    cache = cache_dir or default_cache_dir()
    try:
        meta = json.loads(_pointer(cache, spec).read_text())
    except (OSError, ValueError):
        meta = None
    if meta is not None:
        entry = _cache.read_entry(cache / meta.get("entry", "?"))
        return _from_entry(spec, meta.get("source", "debian:"), entry) if entry else None
    lookup = _catalog_lookup(spec)
    if lookup is None or lookup[1] is None or not cache.is_dir():
        return None
    # A point release resolved under another name (e.g. the series) is cached all the same.
    series, upstream = lookup
    entries = [
        entry
        for entry in map(_cache.read_entry, cache.iterdir())
        if entry is not None
        and series.packages.fullmatch(entry.package)
        and _cache.upstream_version(entry.version) == upstream
    ]
    if not entries:
        return None
    newest = max(entries, key=lambda e: _VersionKey(e.version))
    return _from_entry(spec, "debian:", newest)


def known_kernels(*, cache_dir: Path | None = None) -> list[str]:
    """The catalog names: ``host``, the series, and point releases when lists are cached.

    Point releases come from package lists a previous :func:`resolve` fetched;
    this function never touches the network.
    """
    names = ["host", *CATALOG]
    apt = AptRoot((cache_dir or default_cache_dir()) / "apt")
    if apt.has_lists:
        for series_name in LISTED_POINT_SERIES:
            try:
                versions = _candidates(apt, CATALOG[series_name], None)
            except DownloadError:
                continue
            names += [f"debian-{_cache.upstream_version(v.version)}" for v in versions]
    return names


# --- the sources ---------------------------------------------------------------------------


class KernelSource(ABC):
    """One way of naming a kernel; subclasses are registered in :data:`SOURCES`."""

    #: What the ``source`` field of the resulting kernel starts with.
    kind: ClassVar[str]

    @staticmethod
    @abstractmethod
    def claims(spec: str) -> bool:
        """True when this source understands ``spec``."""

    @staticmethod
    @abstractmethod
    def resolve(spec: str, cache: Path, progress: Progress | None) -> Kernel:
        """Produce the kernel (downloading and extracting as needed)."""


def _host_kernel() -> Kernel:
    uname = os.uname()
    return Kernel(
        name="host",
        release=uname.release,
        version=_version_from(uname.version, uname.release),
        source="host",
        vmlinuz=None,
        modules=None,
    )


class HostSource(KernelSource):
    """``host``: the running kernel."""

    kind = "host"

    @staticmethod
    def claims(spec: str) -> bool:
        return spec == "host"

    @staticmethod
    def resolve(spec: str, cache: Path, progress: Progress | None) -> Kernel:
        return _host_kernel()


def _packages_of(apt: AptRoot, image: PackageVersion) -> list[str]:
    """The packages that hold a kernel: the image itself, or — from 6.19 on,
    where linux-image-* is a meta package — its linux-binary-* (signed, else
    unsigned), linux-modules-* and linux-base-* (config, modules.builtin) of
    the same version."""
    abi = image.name.removeprefix("linux-image-")
    split = re.compile(rf"linux-(binary|binary-unsigned|modules|base)-{re.escape(abi)}")
    found = {v.name for v in apt.versions(split) if v.version == image.version}
    binary = next((f"linux-{kind}-{abi}" for kind in ("binary", "binary-unsigned")
                   if f"linux-{kind}-{abi}" in found), None)
    if binary is None:
        return [image.name]
    if f"linux-modules-{abi}" not in found:
        raise KernelNotFoundError(
            f"{image.name} {image.version} needs linux-modules-{abi}, "
            "which the configured mirror does not carry"
        )
    return [binary] + [p for p in (f"linux-modules-{abi}", f"linux-base-{abi}") if p in found]


class DebianSource(KernelSource):
    """``debian-<series>`` or ``debian-<series>.<patch>``: a catalog kernel."""

    kind = "debian"

    @staticmethod
    def claims(spec: str) -> bool:
        return spec.startswith("debian-")

    @staticmethod
    def resolve(spec: str, cache: Path, progress: Progress | None) -> Kernel:
        lookup = _catalog_lookup(spec)
        if lookup is None:
            raise KernelNotFoundError(
                f"unknown catalog kernel {spec!r} (known series: {', '.join(CATALOG)})"
            )
        series, upstream = lookup
        apt = AptRoot(cache / "apt")
        try:
            apt.update(progress=progress)
        except DownloadError:
            fallback = cached(spec, cache_dir=cache)
            if fallback is None:
                raise
            if progress:
                progress(f"package lists unavailable; using the cached {spec}")
            return fallback
        candidates = _candidates(apt, series, upstream)
        if not candidates:
            raise KernelNotFoundError(
                f"no {spec} kernel in {', '.join(series.suites)} on the configured mirror"
            )
        chosen = candidates[-1]
        entry_dir = cache / _cache.entry_key(chosen.name, chosen.version)
        with locked(entry_dir):
            entry = _cache.read_entry(entry_dir)
            if entry is None:
                download = entry_dir.with_name(entry_dir.name + ".download")
                try:
                    debs = [
                        apt.download(package, chosen.version, download / package, progress)
                        for package in _packages_of(apt, chosen)
                    ]
                except PackageNotFoundError as exc:
                    raise KernelNotFoundError(str(exc)) from exc
                try:
                    entry = _cache.extract_deb(
                        debs, entry_dir, chosen.name, chosen.version, progress
                    )
                finally:
                    shutil.rmtree(download, ignore_errors=True)
        source = f"debian:{chosen.suite}"
        for name in {spec, f"debian-{_cache.upstream_version(chosen.version)}"}:
            pointer = _pointer(cache, name)
            pointer.parent.mkdir(parents=True, exist_ok=True)
            partial = pointer.with_name(f"{pointer.name}.{os.getpid()}.{threading.get_ident()}")
            partial.write_text(json.dumps({"entry": entry_dir.name, "source": source}) + "\n")
            os.replace(partial, pointer)  # readers never see half a pointer
        return _from_entry(spec, source, entry)


class UrlSource(KernelSource):
    """``http(s)://…``: a ``linux-image-*.deb`` to download."""

    kind = "url"

    @staticmethod
    def claims(spec: str) -> bool:
        return spec.startswith(("http://", "https://"))

    @staticmethod
    def resolve(spec: str, cache: Path, progress: Progress | None) -> Kernel:
        deb = cache / "url" / (hashlib.sha256(spec.encode()).hexdigest()[:24] + ".deb")
        with locked(deb):
            if not deb.is_file():
                if progress:
                    progress(f"downloading {spec}")
                partial = deb.with_suffix(".partial")
                try:
                    with (
                        urllib.request.urlopen(spec, timeout=URL_TIMEOUT_S) as response,
                        open(partial, "wb") as out,
                    ):
                        shutil.copyfileobj(response, out, 1 << 20)
                except OSError as exc:
                    partial.unlink(missing_ok=True)
                    raise DownloadError(f"could not download {spec} ({exc})") from exc
                partial.rename(deb)
        try:
            return _deb_kernel(spec, f"url:{spec}", deb, cache, progress)
        except KernelPackageError:
            deb.unlink(missing_ok=True)  # do not keep a bad download
            raise


class DebSource(KernelSource):
    """A path to a ``linux-image-*.deb``."""

    kind = "deb"

    @staticmethod
    def claims(spec: str) -> bool:
        return spec.endswith(".deb")

    @staticmethod
    def resolve(spec: str, cache: Path, progress: Progress | None) -> Kernel:
        deb = Path(spec).expanduser().resolve()
        return _deb_kernel(spec, f"deb:{deb}", deb, cache, progress)


class DirSource(KernelSource):
    """A directory with ``vmlinuz-*`` and ``lib/modules/*``."""

    kind = "dir"

    @staticmethod
    def claims(spec: str) -> bool:
        return Path(spec).expanduser().is_dir()

    @staticmethod
    def resolve(spec: str, cache: Path, progress: Progress | None) -> Kernel:
        root = Path(spec).expanduser().resolve()
        vmlinuz, modules, release = _cache.find_tree(root)
        if modules is not None and not (modules / "modules.dep").is_file():
            if progress:
                progress(f"running depmod for {release}")
            _cache.run_depmod(modules, release)
        _, text = image_release(vmlinuz)
        return Kernel(
            name=spec,
            release=release,
            version=_version_from(text, release),
            source=f"dir:{root}",
            vmlinuz=vmlinuz,
            modules=modules,
        )


class VmlinuzSource(KernelSource):
    """A kernel image file, with ``lib/modules/<release>`` beside it or nothing."""

    kind = "vmlinuz"

    @staticmethod
    def claims(spec: str) -> bool:
        return Path(spec).expanduser().is_file()

    @staticmethod
    def resolve(spec: str, cache: Path, progress: Progress | None) -> Kernel:
        vmlinuz = Path(spec).expanduser().resolve()
        release, text = image_release(vmlinuz)
        release = release or vmlinuz.name.removeprefix("vmlinuz-")
        here = vmlinuz.parent
        candidates = [
            base / sub / release
            for base in (here, here.parent)
            for sub in ("lib/modules", "usr/lib/modules", "modules")
        ]
        modules = next(
            (
                c
                for c in candidates
                if (c / "modules.order").is_file() or (c / "modules.dep").is_file()
            ),
            None,
        )
        if modules is not None and not (modules / "modules.dep").is_file():
            _cache.run_depmod(modules, release)
        return Kernel(
            name=spec,
            release=release,
            version=_version_from(text, release),
            source=f"vmlinuz:{vmlinuz}",
            vmlinuz=vmlinuz,
            modules=modules,
        )


class BuiltSource(KernelSource):
    """``5.10-nobtf``, ``5.10.262-btf``, …: a kernel built by ``libtrace kernels build``
    (see ``build.py``); found in the cache only, never built here."""

    kind = "built"

    @staticmethod
    def claims(spec: str) -> bool:
        from .build import NAME_RE

        return NAME_RE.fullmatch(spec) is not None and not Path(spec).exists()

    @staticmethod
    def resolve(spec: str, cache: Path, progress: Progress | None) -> Kernel:
        from .build import find_built

        built = find_built(spec, cache)
        if built is None:
            raise KernelNotFoundError(
                f"{spec!r} is not built yet: run `libtrace kernels build --source "
                f"{spec.split('-', 1)[0]}` (with --disable btf for a -nobtf kernel)"
            )
        return Kernel(
            name=spec,
            release=built.release,
            version=_cache.upstream_version(built.version),
            source=f"built:{built.entry}",
            vmlinuz=built.vmlinuz,
            modules=built.modules,
        )


#: The kernel sources, in the order they are asked to claim a spec.
SOURCES: dict[str, type[KernelSource]] = {
    cls.kind: cls
    for cls in (
        HostSource,
        DebianSource,
        UrlSource,
        DebSource,
        BuiltSource,
        DirSource,
        VmlinuzSource,
    )
}


def resolve(
    spec: str, *, cache_dir: Path | None = None, progress: Progress | None = None
) -> Kernel:
    """Turn a kernel specification into a bootable kernel.

    Args:
        spec: ``host``, a catalog name (see :func:`known_kernels`), a ``.deb`` path,
            a directory, a vmlinuz path, or an http(s) URL of a ``.deb``.
        cache_dir: where packages are downloaded and extracted
            (default :func:`default_cache_dir`).
        progress: called with one line per slow step (update, download, extract).

    Returns:
        The kernel; its files stay valid as long as the cache entry exists.

    Raises:
        KernelNotFoundError: nothing matches ``spec``.
        KernelPackageError: the package, directory or image is unusable.
        DownloadError: the package lists or the package could not be fetched.
    """
    spec = spec.strip()
    cache = cache_dir or default_cache_dir()
    for source in SOURCES.values():
        if source.claims(spec):
            return source.resolve(spec, cache, progress)
    raise KernelNotFoundError(
        f"{spec!r} is neither a catalog name ({', '.join(['host', *CATALOG])}), "
        "nor an existing .deb, directory or vmlinuz, nor an http(s) URL"
    )

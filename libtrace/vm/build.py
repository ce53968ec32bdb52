"""Kernels built from Debian's ``linux-source-*`` packages, cached like downloaded ones.

Theory of operation
-------------------
``build_kernel(BuildRequest(source="5.10", disable=("btf",)))`` does four
cached steps, each under an ``flock`` and each finished by a marker written
last (see ``_cache.py``), so two processes that want the same kernel build it
once and an interrupted step is redone:

1. **Find the source**: the newest ``linux-source-<series>`` (or the given
   point release) in the private apt root of ``_apt.py``, downloaded with
   ``apt-get download`` from the system's configured mirror.
2. **Unpack it** once per package version into ``built/src/<pkg>_<ver>/``
   (the ``.deb`` holds a ``.tar.xz`` of the tree).  The tree stays pristine:
   every build happens out of tree (``make O=…``), so configurations share it.
3. **Configure**: the base (``make tinyconfig`` for ``minimal``; Debian's own
   ``config-*`` from the matching ``linux-image`` package for ``distro``),
   the fragment of ``_kconfig.py`` merged over it, ``olddefconfig``, then a
   check that every option asked for is really there.
4. **Compile and install** into ``built/<name>_<version>_<hash>/``, the hash
   covering the package version, the base config and the fragment: the entry
   holds ``boot/vmlinuz-<release>``, ``boot/config-<release>``, the ELF
   ``vmlinux`` (kept for ``bpftool gen min_core_btf``) and, when the config
   has modules, ``lib/modules/<release>`` with depmod run.

A failed build removes its partial entry and work directory, keeps its log as
``built/failed/<entry>.log`` and raises :class:`KernelBuildError` whose
message ends with the log's tail.  A successful build writes name pointers
(``built/names/5.10-nobtf.json`` and ``5.10.262-nobtf.json``) that
:func:`find_built` — and so :func:`libtrace.vm.kernels.resolve` — follows.

``min_core_btf`` turns a built kernel with BTF into the small external BTF
file that libbpf's ``btf_custom_path`` needs on its twin without BTF (same
source, same config apart from ``DEBUG_INFO_BTF``, hence the same layouts).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import VmError
from . import _cache, _kconfig
from ._apt import AptRoot, PackageVersion, compare_versions
from ._errors import DownloadError, KernelNotFoundError, KernelPackageError

Progress = Callable[[str], None]

#: The configurations a build can start from.
CONFIGS = ("minimal", "distro")

#: Part of every build's cache key: bump it when the build steps change.
FORMAT = "libtrace-build-1"

#: Log lines quoted at the end of a build error.
LOG_TAIL_LINES = 25

#: Seconds between two progress lines while ``make`` compiles.
PROGRESS_EVERY_S = 15.0

#: Hard limit for one ``make`` step; a distro build on two cores takes about an hour.
MAKE_TIMEOUT_S = 4 * 3600

#: A source spec: a series (``5.10``) or one point release (``5.10.262``).
SOURCE_RE = re.compile(r"(\d+\.\d+)(?:\.(\d+))?")

#: The names built kernels go by: ``5.10-btf``, ``5.10.262-nobtf``, ``5.10-distro-btf-nojit``.
NAME_RE = re.compile(r"\d+\.\d+(?:\.\d+)?(?:-distro)?-(?:no)?btf(?:-no[a-z0-9-]+)?(?:-custom\w+)?")

_COMPILE_LINE = re.compile(r"\s+(CC|AS|LD|AR|BTF|HOSTCC|OBJCOPY)\s+(\S+)")


class KernelBuildError(VmError):
    """A kernel could not be configured or compiled; the message ends with the log tail."""

    def __init__(self, message: str, log: Path | None = None, tail: str = "") -> None:
        text = message
        if log is not None:
            text += f"\nfull log: {log}"
        if tail:
            text += "\n--- last lines of the build log ---\n" + tail
        super().__init__(text)
        self.log = log
        self.tail = tail


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildRequest:
    """What to build."""

    #: A series (``5.10``: the newest linux-source-5.10) or a point release (``5.10.262``).
    source: str
    #: ``minimal`` (tinyconfig + fragment) or ``distro`` (Debian's config + fragment).
    config: str = "minimal"
    #: Feature names from :data:`libtrace.vm._kconfig.FEATURES` to turn off.
    disable: tuple[str, ...] = ()
    #: A user's config fragment merged last (its options win and are checked too).
    fragment: Path | None = None
    #: ``make -j``.
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)

    def series(self) -> tuple[str, str | None]:
        """``("5.10", None)`` or ``("5.10", "5.10.262")``.

        Raises:
            KernelNotFoundError: the source is not a version.
        """
        match = SOURCE_RE.fullmatch(self.source.strip())
        if match is None:
            raise KernelNotFoundError(
                f"--source {self.source!r} is not a kernel series such as 5.10 or 5.10.262"
            )
        return match.group(1), self.source.strip() if match.group(2) else None


@dataclass(frozen=True, slots=True, kw_only=True)
class BuiltKernel:
    """A finished build, as its marker describes it."""

    name: str
    entry: Path
    package: str
    version: str
    release: str
    config: str
    disable: tuple[str, ...]
    btf: bool
    vmlinuz: Path
    vmlinux: Path
    modules: Path | None
    #: Seconds the build took (0 when it came from the cache).
    build_s: float = 0.0
    cached: bool = False


def built_dir(cache_dir: Path | None = None) -> Path:
    """Where built kernels live: ``built/`` inside the kernel cache."""
    from .kernels import default_cache_dir

    return (cache_dir or default_cache_dir()) / "built"


def build_name(request: BuildRequest, fragment_hash: str = "") -> str:
    """The row name of a build, e.g. ``5.10-nobtf`` or ``5.10-distro-btf-nojit``."""
    series, point = request.series()
    disabled = sorted(set(request.disable))
    name = point or series
    if request.config == "distro":
        name += "-distro"
    name += "-nobtf" if "btf" in disabled else "-btf"
    name += "".join(f"-no{feature}" for feature in disabled if feature != "btf")
    if fragment_hash:
        name += f"-custom{fragment_hash[:8]}"
    return name


# --- step 1 and 2: the source tree -----------------------------------------------------------


def _choose_source(apt: AptRoot, series: str, point: str | None) -> PackageVersion:
    package = re.compile(rf"linux-source-{re.escape(series)}")
    found = [
        v
        for v in apt.versions(package)
        if point is None or _cache.upstream_version(v.version) == point
    ]
    if not found:
        wanted = f"{package.pattern} {point}" if point else package.pattern
        raise KernelNotFoundError(f"no {wanted} on the configured mirror")
    best = found[0]
    for candidate in found[1:]:
        if compare_versions(candidate.version, best.version) > 0:
            best = candidate
    return best


def _run_logged(
    argv: Sequence[str],
    log: Path,
    *,
    cwd: Path | None = None,
    progress: Progress | None = None,
    what: str = "",
    timeout_s: float = MAKE_TIMEOUT_S,
) -> None:
    """Run ``argv`` with its output appended to ``log``; report compile progress.

    Raises:
        KernelBuildError: the command failed (the message names ``what``).
    """
    with open(log, "a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                env={**os.environ, "LC_ALL": "C"},
            )
        except OSError as exc:
            raise KernelBuildError(f"{what}: {argv[0]} could not run ({exc})") from exc
        assert proc.stdout is not None
        timer = threading.Timer(timeout_s, proc.kill)
        timer.start()
        compiled, last_report, start = 0, time.monotonic(), time.monotonic()
        try:
            for line in proc.stdout:
                out.write(line)
                match = _COMPILE_LINE.match(line)
                if match:
                    compiled += 1
                    now = time.monotonic()
                    if progress and now - last_report >= PROGRESS_EVERY_S:
                        last_report = now
                        progress(
                            f"{what}: {compiled} steps in {now - start:.0f} s "
                            f"({match.group(1)} {match.group(2)})"
                        )
            code = proc.wait()
        finally:
            timer.cancel()
            if proc.poll() is None:  # interrupted: do not leave make running
                proc.kill()
                proc.wait()
    if code != 0:
        raise KernelBuildError(f"{what} failed (exit {code})")


def _tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(log, errors="replace") as f:
            return "".join(deque(f, maxlen=lines)).rstrip()
    except OSError:
        return ""


def source_tree(
    apt: AptRoot, chosen: PackageVersion, cache: Path, progress: Progress | None = None
) -> Path:
    """The unpacked (pristine) source tree of ``chosen``, unpacking it on first use.

    Raises:
        DownloadError: the package could not be downloaded.
        KernelPackageError: the package holds no source tarball.
    """
    entry = built_dir(cache) / "src" / _cache.entry_key(chosen.name, chosen.version)
    marker = entry / _cache.MARKER
    with _cache.locked(entry):
        try:
            return entry / str(json.loads(marker.read_text())["tree"])
        except (OSError, ValueError, KeyError):
            pass
        shutil.rmtree(entry, ignore_errors=True)
        download = entry.with_name(entry.name + ".download")
        try:
            deb = apt.download(chosen.name, chosen.version, download, progress)
            if progress:
                progress(f"unpacking {deb.name}")
            _cache._tool(["dpkg-deb", "-x", str(deb), str(download / "x")], f"{deb} is corrupt")
            tarballs = sorted((download / "x" / "usr/src").glob("linux-source-*.tar.*"))
            if not tarballs:
                raise KernelPackageError(f"{deb.name} holds no linux-source-*.tar.* tarball")
            entry.mkdir(parents=True)
            _cache._tool(
                ["tar", "-C", str(entry), "-xf", str(tarballs[0])],
                f"{tarballs[0].name} could not be unpacked",
            )
            trees = [p for p in entry.iterdir() if (p / "Makefile").is_file()]
            if len(trees) != 1:
                raise KernelPackageError(f"{tarballs[0].name} holds no single kernel tree")
            marker.write_text(json.dumps({"tree": trees[0].name}) + "\n")
            return trees[0]
        except BaseException:
            shutil.rmtree(entry, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(download, ignore_errors=True)


# --- step 3 and 4: configure, compile, install ---------------------------------------------


def _distro_config(upstream: str, cache: Path, progress: Progress | None) -> str:
    """Debian's own config for ``upstream`` (from the catalog's linux-image package)."""
    from .kernels import resolve

    kernel = resolve(f"debian-{upstream}", cache_dir=cache, progress=progress)
    assert kernel.vmlinuz is not None
    config = kernel.vmlinuz.parent / f"config-{kernel.release}"
    try:
        return config.read_text()
    except OSError as exc:
        raise KernelPackageError(f"{kernel.name} ships no {config.name}") from exc


def _read_marker(entry: Path, name: str) -> BuiltKernel | None:
    base = _cache.read_entry(entry)
    if base is None:
        return None
    try:
        meta = json.loads((entry / _cache.MARKER).read_text())
        return BuiltKernel(
            name=name,
            entry=entry,
            package=base.package,
            version=base.version,
            release=base.release,
            config=meta["config"],
            disable=tuple(meta["disable"]),
            btf=bool(meta["btf"]),
            vmlinuz=base.vmlinuz,
            vmlinux=entry / meta["vmlinux"],
            modules=base.modules,
            build_s=float(meta.get("build_s", 0.0)),
            cached=True,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_pointer(cache: Path, name: str, entry: Path) -> None:
    pointer = built_dir(cache) / "names" / f"{name}.json"
    pointer.parent.mkdir(parents=True, exist_ok=True)
    partial = pointer.with_name(f"{pointer.name}.{os.getpid()}.{threading.get_ident()}")
    partial.write_text(json.dumps({"entry": entry.name}) + "\n")
    os.replace(partial, pointer)  # readers never see half a pointer


def find_built(name: str, cache_dir: Path | None = None) -> BuiltKernel | None:
    """The finished build a row name points to, or None.  Never touches the network."""
    root = built_dir(cache_dir)
    try:
        meta = json.loads((root / "names" / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None
    return _read_marker(root / str(meta.get("entry", "?")), name)


def built_names(cache_dir: Path | None = None) -> list[str]:
    """The names of every finished build in the cache, sorted."""
    names_dir = built_dir(cache_dir) / "names"
    if not names_dir.is_dir():
        return []
    return sorted(
        p.stem for p in names_dir.glob("*.json") if find_built(p.stem, cache_dir) is not None
    )


def _configure(
    tree: Path,
    work: Path,
    log: Path,
    base: str | None,
    fragment: _kconfig.Fragment,
    jobs: int,
    progress: Progress | None,
) -> dict[str, str]:
    make = ["make", "-C", str(tree), f"O={work}", "ARCH=x86_64", f"-j{jobs}"]
    if progress:
        progress("configuring (" + ("tinyconfig" if base is None else "distro config") + ")")
    if base is None:
        _run_logged([*make, "tinyconfig"], log, what="make tinyconfig")
    else:
        (work / ".config").write_text(base)
    frag = work / "libtrace.config"
    frag.write_text(fragment.text())
    _run_logged(
        [
            str(tree / "scripts/kconfig/merge_config.sh"),
            "-m",
            "-O",
            str(work),
            str(work / ".config"),
            str(frag),
        ],
        log,
        cwd=tree,
        what="merging the config fragment",
    )
    _run_logged([*make, "olddefconfig"], log, what="make olddefconfig")
    problems = _kconfig.check(work / ".config", fragment, allow_modules=base is not None)
    if problems:
        with open(log, "a") as out:
            out.write("\n".join(problems) + "\n")
        raise KernelBuildError(
            f"the config fragment cannot be satisfied ({len(problems)} options): "
            + "; ".join(problems[:5])
        )
    return _kconfig.parse((work / ".config").read_text())


def _compile_and_install(
    tree: Path,
    work: Path,
    entry: Path,
    log: Path,
    values: dict[str, str],
    jobs: int,
    progress: Progress | None,
) -> tuple[str, Path | None]:
    make = ["make", "-C", str(tree), f"O={work}", "ARCH=x86_64", f"-j{jobs}"]
    if progress:
        progress(f"compiling bzImage with {jobs} jobs (log: {log})")
    _run_logged([*make, "bzImage"], log, progress=progress, what="make bzImage")
    has_modules = "m" in values.values()
    if has_modules:
        if progress:
            progress("compiling modules")
        _run_logged([*make, "modules"], log, progress=progress, what="make modules")
    release = (work / "include/config/kernel.release").read_text().strip()
    boot = entry / "boot"
    boot.mkdir(parents=True)
    shutil.copyfile(work / "arch/x86/boot/bzImage", boot / f"vmlinuz-{release}")
    shutil.copyfile(work / ".config", boot / f"config-{release}")
    os.replace(work / "vmlinux", entry / "vmlinux")
    modules: Path | None = None
    if has_modules:
        if progress:
            progress("installing modules")
        _run_logged(
            [*make, f"INSTALL_MOD_PATH={entry}", "INSTALL_MOD_STRIP=1", "modules_install"],
            log,
            what="make modules_install",
        )
        modules = entry / "lib/modules" / release
        for link in ("build", "source"):
            (modules / link).unlink(missing_ok=True)
        _cache.run_depmod(modules, release)
    return release, modules


def build_kernel(
    request: BuildRequest,
    *,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> BuiltKernel:
    """Build (or find in the cache) the kernel ``request`` describes.

    Returns:
        The build; ``cached`` says whether it was already there.

    Raises:
        KernelNotFoundError: no such source package.
        DownloadError: the package lists or the source could not be fetched.
        KernelBuildError: configuring or compiling failed; its message ends with the
            log tail, the log is kept under ``built/failed/`` and the cache stays clean.
        FragmentError: an unknown feature in ``disable`` (a ``ValueError``).
    """
    from .kernels import default_cache_dir

    if request.config not in CONFIGS:
        raise KernelBuildError(f"unknown config {request.config!r} (one of {', '.join(CONFIGS)})")
    if request.jobs < 1:
        raise KernelBuildError("jobs must be at least 1")
    cache = cache_dir or default_cache_dir()
    series, point = request.series()
    extra: dict[str, str] = {}
    fragment_hash = ""
    if request.fragment is not None:
        try:
            text = request.fragment.read_text()
        except OSError as exc:
            raise KernelBuildError(f"cannot read {request.fragment}: {exc.strerror}") from exc
        extra = _kconfig.parse_fragment(text, str(request.fragment))
        fragment_hash = hashlib.sha256(text.encode()).hexdigest()
    name = build_name(request, fragment_hash)
    suffix = name.split("-", 1)[1]
    _kconfig.fragment_for(request.disable)  # unknown features fail before any download

    apt = AptRoot(cache / "apt")
    try:
        apt.update(progress=progress)
    except DownloadError:
        offline = find_built(name, cache) if request.fragment is None else None
        if offline is None:
            raise
        if progress:
            progress(f"package lists unavailable; using the cached {name}")
        return offline
    chosen = _choose_source(apt, series, point)
    upstream = _cache.upstream_version(chosen.version)
    base = _distro_config(upstream, cache, progress) if request.config == "distro" else None
    fragment = _kconfig.fragment_for(
        request.disable,
        distro_base=_kconfig.parse(base) if base is not None else None,
        localversion=f"-libtrace-{suffix}"[:60],
        extra=extra,
    )
    digest = hashlib.sha256()
    for part in (FORMAT, chosen.name, chosen.version, request.config, base or "", fragment.text()):
        digest.update(hashlib.sha256(part.encode()).digest())
    rest = name[len(point or series) :]  # "-nobtf", "-distro-btf-nojit", …
    entry = built_dir(cache) / _cache.entry_key(
        f"{series}{rest}_{chosen.version}", digest.hexdigest()[:12]
    )
    names = {name, upstream + rest}

    with _cache.locked(entry):
        found = _read_marker(entry, name)
        if found is None:
            tree = source_tree(apt, chosen, cache, progress)
            found = _build_entry(request, tree, entry, chosen, base, fragment, name, progress)
    for one in names:
        _write_pointer(cache, one, entry)
    return found


def _build_entry(
    request: BuildRequest,
    tree: Path,
    entry: Path,
    chosen: PackageVersion,
    base: str | None,
    fragment: _kconfig.Fragment,
    name: str,
    progress: Progress | None,
) -> BuiltKernel:
    start = time.monotonic()
    work = entry.with_name(entry.name + ".work")
    failed = entry.parent / "failed" / f"{entry.name}.log"
    shutil.rmtree(entry, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "build.log"
    try:
        values = _configure(tree, work, log, base, fragment, request.jobs, progress)
        release, modules = _compile_and_install(
            tree, work, entry, log, values, request.jobs, progress
        )
    except BaseException as exc:
        failed.parent.mkdir(parents=True, exist_ok=True)
        if log.exists():
            shutil.copyfile(log, failed)
        tail = _tail(log)
        shutil.rmtree(entry, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, KernelBuildError):
            raise KernelBuildError(
                f"building {name} from {chosen.name} {chosen.version} failed: {exc.args[0]}",
                failed,
                tail,
            ) from None
        raise
    build_s = time.monotonic() - start
    shutil.copyfile(log, entry / "build.log")
    shutil.rmtree(work, ignore_errors=True)
    btf = values.get("DEBUG_INFO_BTF") == "y"
    vmlinuz = entry / "boot" / f"vmlinuz-{release}"
    meta = {
        "package": chosen.name,
        "version": chosen.version,
        "release": release,
        "vmlinuz": str(vmlinuz.relative_to(entry)),
        "modules": str(modules.relative_to(entry)) if modules else None,
        "vmlinux": "vmlinux",
        "config": request.config,
        "disable": sorted(set(request.disable)),
        "btf": btf,
        "build_s": round(build_s, 1),
    }
    (entry / _cache.MARKER).write_text(json.dumps(meta, indent=1) + "\n")
    if progress:
        progress(f"built {name} ({release}) in {build_s / 60:.1f} min")
    return BuiltKernel(
        name=name,
        entry=entry,
        package=chosen.name,
        version=chosen.version,
        release=release,
        config=request.config,
        disable=tuple(meta["disable"]),  # type: ignore[arg-type]
        btf=btf,
        vmlinuz=vmlinuz,
        vmlinux=entry / "vmlinux",
        modules=modules,
        build_s=build_s,
    )


# --- external BTF -------------------------------------------------------------------------------


def btf_twin(name: str) -> str:
    """The name of the same build with BTF: ``5.10-nobtf`` → ``5.10-btf``."""
    return name.replace("-nobtf", "-btf", 1)


def min_core_btf(
    name: str,
    out: Path | None = None,
    *,
    cache_dir: Path | None = None,
    objects: Sequence[Path] | None = None,
) -> Path:
    """Generate the minimal external BTF for libtrace's objects on the built kernel ``name``.

    For a build without BTF, the BTF comes from its twin built with BTF (same source and
    config apart from ``DEBUG_INFO_BTF``, so the same struct layouts).

    Args:
        name: a built kernel's row name (``5.10-btf`` or ``5.10-nobtf``).
        out: the file to write (default: ``min-core-<objects hash>.btf`` in the entry of
            the kernel that has BTF, reused when present).
        objects: BPF objects to cover (default: every libtrace socket_trace variant).

    Returns:
        The BTF file, for ``Tracer(btf_file=…)`` or ``libtrace trace --btf``.

    Raises:
        KernelNotFoundError: no such build, or no twin with BTF (build it first).
        KernelBuildError: bpftool failed.
    """
    built = find_built(name, cache_dir)
    if built is None:
        raise KernelNotFoundError(
            f"no built kernel {name!r} (build one with `libtrace kernels build --source …`)"
        )
    if not built.btf:
        twin = find_built(btf_twin(name), cache_dir)
        if twin is None or not twin.btf:
            raise KernelNotFoundError(
                f"{name} has no BTF and its twin {btf_twin(name)} is not built: run "
                f"`libtrace kernels build --source {name.split('-', 1)[0]}` "
                "with the same options but without --disable btf"
            )
        built = twin
    if objects is None:
        from ..bpf.build import ALL_VARIANTS, object_path

        objects = [object_path(v) for v in ALL_VARIANTS]
    digest = hashlib.sha256()
    for obj in objects:
        digest.update(hashlib.sha256(Path(obj).read_bytes()).digest())
    target = out or built.entry / f"min-core-{digest.hexdigest()[:12]}.btf"
    with _cache.locked(built.entry / "min-core"):
        if out is None and target.is_file():
            return target
        bpftool = shutil.which("bpftool") or "/usr/sbin/bpftool"
        partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
        argv = [
            bpftool,
            "gen",
            "min_core_btf",
            str(built.vmlinux),
            str(partial),
            *map(str, objects),
        ]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KernelBuildError(f"bpftool could not run ({exc}): install bpftool") from exc
        if proc.returncode != 0 or not partial.is_file():
            partial.unlink(missing_ok=True)
            raise KernelBuildError(
                f"bpftool gen min_core_btf failed for {built.name}",
                tail=(proc.stderr or proc.stdout).strip()[-4000:],
            )
        os.replace(partial, target)
    return target

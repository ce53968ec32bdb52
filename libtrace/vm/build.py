"""Kernels built from Debian's ``linux-source-*`` packages or any kernel source tree,
cached like downloaded ones.

Theory of operation
-------------------
``build_kernel(BuildRequest(source="5.10", disable=("btf",)))`` does four
cached steps, each under an ``flock`` and each finished by a marker written
last (see :mod:`libtrace.host.cache`), so two processes that want the same kernel build it
once and an interrupted step is redone:

1. **Find the source**: the newest ``linux-source-<series>`` (or the given
   point release) in the private apt root of :mod:`libtrace.host.apt`, downloaded with
   ``apt-get download`` from the system's configured mirror.
2. **Unpack it** once per package version into ``built/src/<pkg>_<ver>/``
   (the ``.deb`` holds a ``.tar.xz`` of the tree).  The tree stays pristine:
   every build happens out of tree (``make O=…``), so configurations share it.
3. **Configure**: the base (``make tinyconfig`` for ``minimal``; Debian's own
   ``config-*`` from the matching ``linux-image`` package for ``distro``),
   the fragment of ``_kconfig.py`` merged over it, ``olddefconfig``, then a
   check that every option asked for is really there — unless the tree's
   Kconfig does not define the option at all: those are reported as absent.
4. **Compile and install** into ``built/<name>_<version>_<hash>/``, the hash
   covering the package version, the base config and the fragment: the entry
   holds ``boot/vmlinuz-<release>``, ``boot/config-<release>``, the ELF
   ``vmlinux`` (kept for ``bpftool gen min_core_btf``) and, when the config
   has modules, ``lib/modules/<release>`` with depmod run.

``BuildRequest(source_dir=…)`` skips steps 1 and 2: the user's tree (a
distro source, a vendor tree, a git checkout) is used as it is, never
written to, and nothing is downloaded.  Its version comes from its top-level
``Makefile``; its entry's hash covers the resolved path, that version and the
fragment, so edits to a tree that keep its version are not noticed.

Every ``make`` gets ``CC=`` and ``HOSTCC=`` (:func:`choose_compiler`: older
kernels need an older gcc than Debian 12's) and, for builds with BTF,
``PAHOLE=`` a wrapper that keeps pahole from encoding BTF the kernel predates
(:func:`pahole_skip_options`).

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

import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, VmError
from ..host.apt import AptRoot, PackageVersion, compare_versions
from ..host.cache import MARKER, locked
from ..host.errors import PackageNotFoundError
from . import _cache, _kconfig
from ._errors import DownloadError, KernelNotFoundError, KernelPackageError

Progress = Callable[[str], None]

#: The configurations a build can start from.
CONFIGS = ("minimal", "distro")

#: Part of every build's cache key: bump it when the build steps change.
#: 2: CC/HOSTCC chosen by version, CROSS_COMPILE emptied, the pahole wrapper, absent
#: options not checked.
FORMAT = "libtrace-build-2"

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

#: Kernels older than this do not build with Debian 12's gcc 12 (4.19's objtool
#: stops on ``-Werror=use-after-free``, 5.8 fails too); they get an older gcc.
OLD_COMPILER_BEFORE = (5, 15)

#: The older compilers, best first: Debian 12 packages both.
OLD_COMPILERS = ("gcc-11", "gcc-10")

#: pahole options that keep BTF kinds out of a kernel older than the kind: a
#: kernel rejects its own BTF at boot when it meets one it does not know
#: (a 5.8 kernel with pahole 1.24's enum64/signed enums: "Invalid btf_info kind_flag").
PAHOLE_SKIPS = (
    ((6, 0), "--skip_encoding_btf_enum64"),
    ((5, 17), "--skip_encoding_btf_type_tag"),
    ((5, 16), "--skip_encoding_btf_decl_tag"),
)

_MAKEFILE_VAR_RE = re.compile(r"^(VERSION|PATCHLEVEL|SUBLEVEL)[ \t]*=[ \t]*(\d+)[ \t]*$", re.M)

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
    """What to build: give ``source`` or ``source_dir``, not both.

    Raises:
        ConfigError: neither or both (a ``ValueError``).
    """

    #: A series (``5.10``: the newest linux-source-5.10) or a point release (``5.10.262``).
    source: str = ""
    #: A kernel source tree to build instead (nothing is downloaded; it is not written to).
    source_dir: Path | None = None
    #: ``minimal`` (tinyconfig + fragment) or ``distro`` (Debian's config + fragment).
    config: str = "minimal"
    #: Feature names from :data:`libtrace.vm._kconfig.FEATURES` to turn off.
    disable: tuple[str, ...] = ()
    #: A user's config fragment merged last (its options win and are checked too).
    fragment: Path | None = None
    #: ``make -j``.
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)

    def __post_init__(self) -> None:
        if bool(self.source) == (self.source_dir is not None):
            raise ConfigError("a build needs either source (a series) or source_dir, not both")

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
    #: The tree a ``source_dir`` build came from (None for a Debian package).
    source_dir: Path | None = None
    #: The ``CC``/``HOSTCC`` it was built with (empty for builds of format 1).
    compiler: str = ""
    #: Fragment options the tree's Kconfig does not define (``PVH``, …).
    absent_options: tuple[str, ...] = ()


def built_dir(cache_dir: Path | None = None) -> Path:
    """Where built kernels live: ``built/`` inside the kernel cache."""
    from .kernels import default_cache_dir

    return (cache_dir or default_cache_dir()) / "built"


def build_name(request: BuildRequest, fragment_hash: str = "") -> str:
    """The row name of a build, e.g. ``5.10-nobtf``, ``5.10-distro-btf-nojit`` or, from
    a source tree, ``5.10.262-btf``.

    Raises:
        KernelNotFoundError: ``source`` is not a version or ``source_dir`` not a kernel tree.
    """
    if request.source_dir is not None:
        name = ".".join(map(str, tree_version(request.source_dir)))
    else:
        series, point = request.series()
        name = point or series
    disabled = sorted(set(request.disable))
    if request.config == "distro":
        name += "-distro"
    name += "-nobtf" if "btf" in disabled else "-btf"
    name += "".join(f"-no{feature}" for feature in disabled if feature != "btf")
    if fragment_hash:
        name += f"-custom{fragment_hash[:8]}"
    return name


# --- the tree's version and the tools for it ------------------------------------------------


def makefile_version(text: str) -> tuple[int, int, int] | None:
    """``(VERSION, PATCHLEVEL, SUBLEVEL)`` from a kernel's top-level Makefile, or None."""
    found = dict(_MAKEFILE_VAR_RE.findall(text))
    try:
        return int(found["VERSION"]), int(found["PATCHLEVEL"]), int(found["SUBLEVEL"])
    except KeyError:
        return None


def tree_version(tree: Path) -> tuple[int, int, int]:
    """The kernel version of the source tree ``tree``.

    Raises:
        KernelNotFoundError: ``tree`` is not a kernel source tree.
    """
    try:
        version = makefile_version((tree / "Makefile").read_text(errors="replace"))
    except OSError:
        version = None
    if version is None or not (tree / "Kconfig").is_file():
        raise KernelNotFoundError(
            f"--source-dir {tree} is not a kernel source tree "
            "(no Makefile with VERSION, PATCHLEVEL and SUBLEVEL, or no Kconfig)"
        )
    return version


def choose_compiler(
    version: tuple[int, int, int], which: Callable[[str], str | None] = shutil.which
) -> tuple[str, str]:
    """``(compiler, note)`` for a kernel of ``version``: the newest installed of
    :data:`OLD_COMPILERS` for kernels before :data:`OLD_COMPILER_BEFORE`, else ``gcc``.

    The note is empty unless an old kernel has to make do with the default gcc; it
    then says which package to install if the build fails.
    """
    if version[:2] >= OLD_COMPILER_BEFORE:
        return "gcc", ""
    for compiler in OLD_COMPILERS:
        if which(compiler):
            return compiler, ""
    before = ".".join(map(str, OLD_COMPILER_BEFORE))
    return "gcc", (
        f"neither {' nor '.join(OLD_COMPILERS)} is installed; kernels before {before} "
        f"often fail with a newer gcc: if the build fails, apt-get install {OLD_COMPILERS[0]}"
    )


def _compiler_version(compiler: str) -> str:
    try:
        proc = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.partition("\n")[0].strip()


def pahole_skip_options(version: tuple[int, int, int], pahole_help: str) -> list[str]:
    """The :data:`PAHOLE_SKIPS` options a kernel of ``version`` needs and pahole offers."""
    return [
        option
        for since, option in PAHOLE_SKIPS
        if version[:2] < since and re.search(rf"(?<![\w-]){option}(?![\w-])", pahole_help)
    ]


def pahole_wrapper(pahole: str, options: Sequence[str]) -> str:
    """The text of a ``PAHOLE=`` script: ``options`` added to BTF encoding (``-J``) only."""
    real = shlex.quote(pahole)
    added = " ".join(map(shlex.quote, options))
    return (
        "#!/bin/sh\n"
        "# Written by libtrace for one kernel build: BTF that this kernel can read.\n"
        "# Only BTF encoding (-J) gets the options; `pahole --version` and the rest\n"
        "# reach pahole unchanged.\n"
        'for arg in "$@"; do\n'
        f'  if [ "$arg" = -J ]; then exec {real} {added} "$@"; fi\n'
        "done\n"
        f'exec {real} "$@"\n'
    )


@functools.cache
def _pahole_help(pahole: str) -> str:
    try:
        proc = subprocess.run([pahole, "--help"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout + proc.stderr


def _write_pahole_wrapper(
    work: Path, version: tuple[int, int, int]
) -> tuple[Path | None, list[str]]:
    """The wrapper for a build with BTF and the options it adds; no wrapper when
    plain pahole will do (a new kernel, or a pahole without the options)."""
    pahole = shutil.which("pahole")
    options = pahole_skip_options(version, _pahole_help(pahole)) if pahole else []
    if pahole is None or not options:
        return None, []
    wrapper = work / "pahole"
    wrapper.write_text(pahole_wrapper(pahole, options))
    wrapper.chmod(0o755)
    return wrapper, options


def make_argv(
    tree: Path, work: Path, jobs: int, compiler: str, pahole: Path | None = None
) -> list[str]:
    """The ``make`` command line every step of a build starts with.

    ``ARCH`` and an empty ``CROSS_COMPILE`` override what a vendor tree's Makefile
    may set (an ARM board's tree names its cross toolchain there, and ``AR``,
    ``LD`` and ``NM`` follow it); ``CC`` and ``HOSTCC`` are :func:`choose_compiler`'s.
    """
    argv = ["make", "-C", str(tree), f"O={work}", "ARCH=x86_64", "CROSS_COMPILE=", f"-j{jobs}"]
    argv += [f"CC={compiler}", f"HOSTCC={compiler}"]
    if pahole is not None:
        argv.append(f"PAHOLE={pahole}")
    return argv


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
    marker = entry / MARKER
    with locked(entry):
        try:
            return entry / str(json.loads(marker.read_text())["tree"])
        except (OSError, ValueError, KeyError):
            pass
        shutil.rmtree(entry, ignore_errors=True)
        download = entry.with_name(entry.name + ".download")
        try:
            try:
                deb = apt.download(chosen.name, chosen.version, download, progress)
            except PackageNotFoundError as exc:
                raise KernelNotFoundError(str(exc)) from exc
            if progress:
                progress(f"unpacking {deb.name}")
            _cache.tool(["dpkg-deb", "-x", str(deb), str(download / "x")], f"{deb} is corrupt")
            tarballs = sorted((download / "x" / "usr/src").glob("linux-source-*.tar.*"))
            if not tarballs:
                raise KernelPackageError(f"{deb.name} holds no linux-source-*.tar.* tarball")
            entry.mkdir(parents=True)
            _cache.tool(
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
        meta = json.loads((entry / MARKER).read_text())
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
            source_dir=Path(meta["source_dir"]) if meta.get("source_dir") else None,
            compiler=str(meta.get("compiler", "")),
            absent_options=tuple(meta.get("absent_options", ())),
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
    make: list[str],
    defined: frozenset[str],
    progress: Progress | None,
) -> dict[str, str]:
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
        cwd=work,  # its temporary files go to the working directory: not into the tree
        what="merging the config fragment",
    )
    _run_logged([*make, "olddefconfig"], log, what="make olddefconfig")
    problems = _kconfig.check(
        work / ".config", fragment, allow_modules=base is not None, defined=defined
    )
    if problems:
        with open(log, "a") as out:
            out.write("\n".join(problems) + "\n")
        raise KernelBuildError(
            f"the config fragment cannot be satisfied ({len(problems)} options): "
            + "; ".join(problems[:5])
        )
    return _kconfig.parse((work / ".config").read_text())


def _compile_and_install(
    work: Path,
    entry: Path,
    log: Path,
    values: dict[str, str],
    make: list[str],
    progress: Progress | None,
) -> tuple[str, Path | None]:
    if progress:
        how = " ".join(arg for arg in make if arg.startswith(("-j", "CC=")))
        progress(f"compiling bzImage with {how} (log: {log})")
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
        KernelNotFoundError: no such source package, or ``source_dir`` is not a kernel tree.
        DownloadError: the package lists or the source could not be fetched.
        KernelBuildError: configuring or compiling failed; its message ends with the
            log tail, the log is kept under ``built/failed/`` and the cache stays clean.
        FragmentError: an unknown feature in ``disable`` (a ``ValueError``).
        ConfigError: ``config="distro"`` with a ``source_dir`` (a ``ValueError``).
    """
    from .kernels import default_cache_dir

    if request.config not in CONFIGS:
        raise KernelBuildError(f"unknown config {request.config!r} (one of {', '.join(CONFIGS)})")
    if request.jobs < 1:
        raise KernelBuildError("jobs must be at least 1")
    if request.source_dir is not None and request.config == "distro":
        raise ConfigError("--config distro needs --source: Debian's config comes with its package")
    cache = cache_dir or default_cache_dir()
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
    if request.source_dir is not None:
        return _build_tree(request, cache, name, extra, progress)

    series, point = request.series()
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
    origin = _Origin(chosen.name, chosen.version, f"{chosen.name} {chosen.version}")

    with locked(entry):
        found = _read_marker(entry, name)
        if found is None:
            tree = source_tree(apt, chosen, cache, progress)
            found = _build_entry(request, tree, entry, origin, base, fragment, name, progress)
    for one in (name, upstream + rest):
        _write_pointer(cache, one, entry)
    return found


def _build_tree(
    request: BuildRequest,
    cache: Path,
    name: str,
    extra: dict[str, str],
    progress: Progress | None,
) -> BuiltKernel:
    """:func:`build_kernel` for a ``source_dir``: no download, the tree used as it is."""
    assert request.source_dir is not None
    tree = request.source_dir.resolve()
    version = ".".join(map(str, tree_version(tree)))
    for leftover in (".config", "include/config", "arch/x86/include/generated"):
        if (tree / leftover).exists():
            raise KernelBuildError(
                f"{tree} was configured or built in place ({leftover} exists), so `make O=…` "
                "refuses it: run `make mrproper` there (libtrace builds out of tree)"
            )
    suffix = name.split("-", 1)[1]
    fragment = _kconfig.fragment_for(
        request.disable, localversion=f"-libtrace-{suffix}"[:60], extra=extra
    )
    digest = hashlib.sha256()
    for part in (FORMAT, str(tree), version, fragment.text()):
        digest.update(hashlib.sha256(part.encode()).digest())
    entry = built_dir(cache) / _cache.entry_key(f"{name}_{tree.name}", digest.hexdigest()[:12])
    origin = _Origin(tree.name, version, str(tree), source_dir=tree)
    with locked(entry):
        found = _read_marker(entry, name)
        if found is None:
            found = _build_entry(request, tree, entry, origin, None, fragment, name, progress)
    _write_pointer(cache, name, entry)
    return found


@dataclass(frozen=True, slots=True)
class _Origin:
    """Where a build's tree came from, as its marker records it."""

    package: str
    version: str
    #: How errors name it: ``linux-source-5.10 5.10.262-1`` or the tree's path.
    shown: str
    source_dir: Path | None = None


def _build_entry(
    request: BuildRequest,
    tree: Path,
    entry: Path,
    origin: _Origin,
    base: str | None,
    fragment: _kconfig.Fragment,
    name: str,
    progress: Progress | None,
) -> BuiltKernel:
    start = time.monotonic()
    version = tree_version(tree)
    defined = _kconfig.defined_symbols(tree)
    absent = _kconfig.absent(fragment, defined)
    if absent and progress:
        progress("not in this tree: " + ", ".join(f"CONFIG_{option}" for option in absent))
    compiler, note = choose_compiler(version)
    if progress:
        older = ".".join(map(str, OLD_COMPILER_BEFORE))
        why = note or (f"the kernel is older than {older}" if compiler != "gcc" else "")
        progress(f"compiler: {compiler}" + (f" ({why})" if why else ""))
    work = entry.with_name(entry.name + ".work")
    failed = entry.parent / "failed" / f"{entry.name}.log"
    shutil.rmtree(entry, ignore_errors=True)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "build.log"
    # Debian's pahole encodes BTF kinds newer than many kernels (enum64 and signed
    # enums before 6.0, tags before 5.16/5.17), and such a kernel rejects its own BTF
    # at boot; Debian's 5.10 source and any other tree alike.
    wants_btf = fragment.as_dict().get("DEBUG_INFO_BTF") == "y" and "DEBUG_INFO_BTF" in defined
    pahole, skips = _write_pahole_wrapper(work, version) if wants_btf else (None, [])
    if skips and progress:
        progress("pahole encodes BTF with " + " ".join(skips))
    make = make_argv(tree, work, request.jobs, compiler, pahole)
    try:
        values = _configure(tree, work, log, base, fragment, make, defined, progress)
        release, modules = _compile_and_install(work, entry, log, values, make, progress)
    except BaseException as exc:
        failed.parent.mkdir(parents=True, exist_ok=True)
        if log.exists():
            shutil.copyfile(log, failed)
        tail = _tail(log)
        shutil.rmtree(entry, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, KernelBuildError):
            raise KernelBuildError(
                f"building {name} from {origin.shown} with {compiler} failed: {exc.args[0]}"
                + (f" ({note})" if note else ""),
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
        "package": origin.package,
        "version": origin.version,
        "source_dir": str(origin.source_dir) if origin.source_dir else None,
        "release": release,
        "vmlinuz": str(vmlinuz.relative_to(entry)),
        "modules": str(modules.relative_to(entry)) if modules else None,
        "vmlinux": "vmlinux",
        "config": request.config,
        "disable": sorted(set(request.disable)),
        "btf": btf,
        "compiler": compiler,
        "compiler_version": _compiler_version(compiler),
        "pahole_options": skips,
        "absent_options": absent,
        "build_s": round(build_s, 1),
    }
    (entry / MARKER).write_text(json.dumps(meta, indent=1) + "\n")
    if progress:
        progress(f"built {name} ({release}) in {build_s / 60:.1f} min")
    return BuiltKernel(
        name=name,
        entry=entry,
        package=origin.package,
        version=origin.version,
        release=release,
        config=request.config,
        disable=tuple(sorted(set(request.disable))),
        btf=btf,
        vmlinuz=vmlinuz,
        vmlinux=entry / "vmlinux",
        modules=modules,
        build_s=build_s,
        source_dir=origin.source_dir,
        compiler=compiler,
        absent_options=tuple(absent),
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
            source = (
                f"--source-dir {built.source_dir}"
                if built.source_dir
                else f"--source {name.split('-', 1)[0]}"
            )
            raise KernelNotFoundError(
                f"{name} has no BTF and its twin {btf_twin(name)} is not built: run "
                f"`libtrace kernels build {source}` "
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
    with locked(built.entry / "min-core"):
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

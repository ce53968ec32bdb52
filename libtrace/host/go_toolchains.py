"""Go toolchains from Debian packages, and cached builds of test programs.

Theory of operation: Debian packages one Go toolchain per minor version
(``golang-1.NN-go`` holds ``/usr/lib/go-1.NN`` with the compiler, and
``golang-1.NN-src`` the standard library under ``/usr/share/go-1.NN``, which
the first links to).  :func:`toolchain` downloads both with the private apt
root of :mod:`libtrace.host.apt` (so the mirror is the one the system's apt
configuration names, and the system's apt state is never touched), extracts
them with ``dpkg-deb -x`` into ``<cache>/<version>/root`` and writes a marker
last; an entry without its marker is redone.  Every entry is guarded by an
``flock`` so parallel test runs download once.

:func:`build` compiles a directory of stdlib-only Go sources with one
toolchain, optionally stripped (``-ldflags=-s -w``) or as PIE, into
``<cache>/builds/<key>/<name>``; the key hashes the sources, the toolchain
version and the flags, so an edit rebuilds and nothing else does.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from ..errors import LibtraceError
from .apt import AptRoot, PackageVersion, compare_versions
from .cache import MARKER as MARKER  # public here too: a finished toolchain or build
from .cache import cache_dir, locked
from .tools import run_tool

#: The Go minor versions Debian packages in the suites below (checked 2026-11-25).
GO_VERSIONS = ("1.15", "1.19", "1.21", "1.22", "1.23", "1.24", "1.26", "1.27")
#: Names the toolchains a test run or a matrix sweep uses (``1.15,1.21``); unset: all.
VERSIONS_ENV = "LIBTRACE_GO_VERSIONS"


def selected_versions() -> tuple[str, ...]:
    """The Go versions ``$LIBTRACE_GO_VERSIONS`` names, else :data:`GO_VERSIONS`."""
    chosen = tuple(v.strip() for v in os.environ.get(VERSIONS_ENV, "").split(",") if v.strip())
    return chosen or GO_VERSIONS

#: The suites that hold them: 1.15 bullseye, 1.19 bookworm, 1.21–1.23
#: bookworm-backports, 1.24 trixie, 1.26/1.27 sid.
GO_SUITES = ("bullseye", "bookworm", "bookworm-backports", "trixie", "sid")

#: Seconds a ``dpkg-deb -x`` or a ``go build`` may take (1.15 builds net/http in ~20 s cold).
TOOL_TIMEOUT_S = 600

Progress = Callable[[str], None]


class ToolchainError(LibtraceError):
    """A Go toolchain could not be obtained or could not build a program."""


def default_cache_dir() -> Path:
    """``$LIBTRACE_CACHE_DIR/go``, else ``libtrace/go`` under ``$XDG_CACHE_HOME`` or ``~/.cache``.

    Beside the kernel cache, so one variable moves every download.
    """
    return cache_dir("go")


def _run(
    argv: list[str], what: str, *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    return run_tool(
        argv, what, ToolchainError, timeout=TOOL_TIMEOUT_S, tail_lines=3, cwd=cwd, env=env
    )


def toolchain(
    version: str, *, cache_dir: Path | None = None, progress: Progress | None = None
) -> Path:
    """Download and extract Debian's Go ``version`` (``"1.21"``) once; return its GOROOT.

    Raises:
        ToolchainError: the version is not packaged in the reachable suites, or the
            download or extraction failed (wrapping the apt layer's error).
    """
    if not re.fullmatch(r"1\.\d+", version):
        raise ToolchainError(f"not a Go minor version: {version!r} (expected e.g. 1.21)")
    cache = cache_dir or default_cache_dir()
    entry = cache / version
    goroot = entry / "root" / "usr" / "lib" / f"go-{version}"
    with locked(entry):
        if (entry / MARKER).exists():
            return goroot
        try:
            apt = AptRoot(cache / "apt", GO_SUITES)
            apt.update(progress=progress)
            pattern = re.compile(rf"golang-{re.escape(version)}-(go|src)")
            found = apt.versions(pattern)
            if not {v.name for v in found} >= {f"golang-{version}-go", f"golang-{version}-src"}:
                raise ToolchainError(f"Go {version} is not packaged in {', '.join(GO_SUITES)}")
            if entry.exists():
                shutil.rmtree(entry)
            (entry / "debs").mkdir(parents=True)
            for name in (f"golang-{version}-go", f"golang-{version}-src"):
                best = _newest(v for v in found if v.name == name)
                deb = apt.download(name, best.version, entry / "debs" / name, progress)
                if progress:
                    progress(f"extracting {deb.name}")
                _run(["dpkg-deb", "-x", str(deb), str(entry / "root")], f"extracting {deb}")
                deb.unlink()
        except LibtraceError as exc:
            if isinstance(exc, ToolchainError):
                raise
            raise ToolchainError(f"Go {version} could not be downloaded: {exc}") from exc
        if not (goroot / "bin" / "go").exists():
            raise ToolchainError(f"the Go {version} package holds no {goroot}/bin/go")
        (entry / MARKER).write_text(version + "\n")
    return goroot


def _newest(versions: Iterable[PackageVersion]) -> PackageVersion:
    def order(a: PackageVersion, b: PackageVersion) -> int:
        return compare_versions(a.version, b.version)

    return max(versions, key=functools.cmp_to_key(order))


def go_env(goroot: Path, cache: Path) -> dict[str, str]:
    """The environment that runs ``goroot``'s ``go`` offline and self-contained."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GO")}
    env.update(
        GOROOT=str(goroot),
        GOPATH=str(cache / "gopath"),
        GOCACHE=str(cache / "gocache"),
        GOPROXY="off",
        GOFLAGS="-mod=mod",
        GOTOOLCHAIN="local",
        GO111MODULE="on",
        CGO_ENABLED="0",
        PATH=f"{goroot / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
    )
    return env


def _source_hash(program: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(program.rglob("*")):
        if path.is_file() and path.suffix in (".go", ".mod"):
            digest.update(str(path.relative_to(program)).encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build(
    program: Path,
    version: str,
    stripped: bool,
    *,
    pie: bool = False,
    cache_dir: Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Build the Go ``main`` package in directory ``program`` with Go ``version``, cached.

    Args:
        program: a directory holding a ``main`` package (stdlib imports only) and a go.mod.
        version: a Go minor version (``"1.21"``).
        stripped: link with ``-ldflags=-s -w`` (no symbol table, no DWARF).
        pie: build a position-independent executable.

    Returns:
        The path of the binary, named after the directory.

    Raises:
        ToolchainError: the toolchain is unavailable or the build failed.
    """
    cache = cache_dir or default_cache_dir()
    goroot = toolchain(version, cache_dir=cache, progress=progress)
    flags = ("s" if stripped else "u") + ("p" if pie else "e")
    key = f"{program.name}-go{version}-{flags}-{_source_hash(program)}"
    entry = cache / "builds" / key
    binary = entry / program.name
    with locked(entry):
        if (entry / MARKER).exists():
            return binary
        entry.mkdir(parents=True, exist_ok=True)
        argv = [str(goroot / "bin" / "go"), "build", "-trimpath", "-o", str(binary)]
        if stripped:
            argv.append("-ldflags=-s -w")
        if pie:
            argv.append("-buildmode=pie")
        if progress:
            progress(f"building {program.name} with Go {version} ({flags})")
        with tempfile.TemporaryDirectory() as tmp:
            # Build from a copy whose go.mod names this toolchain's version, so
            # newer toolchains never ask for another one.
            work = Path(tmp) / program.name
            shutil.copytree(program, work)
            (work / "go.mod").write_text(f"module example.com/{program.name}\n\ngo {version}\n")
            argv.append(".")
            _run(
                argv,
                f"go build of {program} with Go {version}",
                cwd=work,
                env=go_env(goroot, cache),
            )
        (entry / MARKER).write_text(" ".join(argv) + "\n")
    return binary


def go_tool(version: str, *args: str, cache_dir: Path | None = None) -> str:
    """Run ``go ARGS…`` of toolchain ``version`` and return its standard output.

    Raises:
        ToolchainError: the toolchain is unavailable or the command failed.
    """
    cache = cache_dir or default_cache_dir()
    goroot = toolchain(version, cache_dir=cache)
    return _run(
        [str(goroot / "bin" / "go"), *args], f"go {' '.join(args[:2])}", env=go_env(goroot, cache)
    )

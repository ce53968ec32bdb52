"""Compile the BPF C sources into CO-RE objects, one per variant.

Theory of operation: ``socket_trace.bpf.c`` is one source with three
compile-time switches (see its header comment).  Each combination is a
:class:`Variant`, compiled by clang to its own object.  The wheel build runs
:func:`build` (``setup.py``'s ``build_py`` step) so installed packages carry
the objects; a source checkout has none, so :func:`object_path` compiles on
first use into a cache directory keyed by a hash of the sources, and a changed
source never loads a stale object.

Run ``python -m libtrace.bpf.build OUT_DIR`` to build by hand.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent
SOURCES = ("socket_trace.bpf.c", "go_tls.bpf.c", "socket_trace.h", "core_types.h", "clamp.h")
#: Directory of prebuilt objects inside an installed package.
PACKAGED_DIR = SOURCE_DIR / "obj"
STAMP = "sources.sha256"
#: Where a source checkout's objects are compiled on first use.
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "libtrace" / "bpf"
CLANG_FLAGS = ("-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", "-Wall", "-Werror")


class BuildError(RuntimeError):
    """clang could not compile the BPF sources."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Variant:
    """One compiled flavour of the socket tracer."""

    #: BPF ring buffer (5.8+) rather than a perf event array.
    ringbuf: bool = True
    #: bpf_probe_read_user/_kernel and the cgroup id (5.5+) rather than bpf_probe_read.
    probe_read_user: bool = True
    #: Socket identity from struct sock through CO-RE (needs kernel BTF).
    btf: bool = True

    @property
    def name(self) -> str:
        parts = [
            "ringbuf" if self.ringbuf else "perfbuf",
            "probe-read-user" if self.probe_read_user else "probe-read",
            "btf" if self.btf else "no-btf",
        ]
        return "+".join(parts)

    @property
    def args_at_exit(self) -> bool:
        """Whether the object carries the data syscalls' exits that read their own
        arguments through bpf_task_pt_regs (``lt_exitr_*``; socket_trace.bpf.c
        compiles them where BTF and bpf_probe_read_user both are).  Every BTF
        object also carries exits that find the same registers on the kernel
        stack (``lt_exitk_*``, for kernels without the helper)."""
        return self.btf and self.probe_read_user

    @property
    def batches(self) -> bool:
        """Whether the object carries the per-CPU batches of data events (the
        ``batches`` map and ``lt_flush_batches``): with the ring buffer, where
        it carries the ``lt_exitr_*`` programs, their only users."""
        return self.ringbuf and self.args_at_exit

    @property
    def object_name(self) -> str:
        return f"socket_trace.{self.name.replace('+', '.')}.bpf.o"

    def defines(self) -> list[str]:
        return [
            f"-DLT_RINGBUF={int(self.ringbuf)}",
            f"-DLT_PROBE_READ_USER={int(self.probe_read_user)}",
            f"-DLT_WITH_BTF={int(self.btf)}",
        ]


ALL_VARIANTS = tuple(
    Variant(ringbuf=r, probe_read_user=p, btf=b)
    for r, p, b in itertools.product((True, False), repeat=3)
)
#: The variant a 4.14 kernel without BTF would load.
OLDEST_VARIANT = Variant(ringbuf=False, probe_read_user=False, btf=False)


def sources_digest() -> str:
    digest = hashlib.sha256()
    for name in SOURCES:
        digest.update(name.encode())
        digest.update((SOURCE_DIR / name).read_bytes())
    return digest.hexdigest()


def libbpf_include_dir() -> Path:
    """The directory holding ``bpf/bpf_helpers.h`` (package libbpf-dev)."""
    for candidate in (Path("/usr/include"), Path("/usr/local/include")):
        if (candidate / "bpf" / "bpf_helpers.h").exists():
            return candidate
    raise BuildError("bpf/bpf_helpers.h not found: install libbpf-dev (scripts/install-deps.sh)")


def compile_variant(variant: Variant, out_dir: Path, clang: str = "clang") -> Path:
    if shutil.which(clang) is None:
        raise BuildError(f"{clang} not found: install clang (scripts/install-deps.sh)")
    out = out_dir / variant.object_name
    argv = [
        clang,
        *CLANG_FLAGS,
        *variant.defines(),
        f"-I{SOURCE_DIR}",
        f"-I{libbpf_include_dir()}",
        "-c",
        str(SOURCE_DIR / "socket_trace.bpf.c"),
        "-o",
        str(out),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"clang failed for {variant.name}:\n{proc.stderr}")
    return out


def build(out_dir: Path, clang: str = "clang", *, announce: bool = False) -> list[Path]:
    """Compile every variant into ``out_dir`` (atomically) and stamp it; with
    ``announce``, say so first (a command's first run from a checkout would
    otherwise be seconds of silence; a wheel carries the objects)."""
    if shutil.which(clang) is None:
        raise BuildError(f"{clang} not found: install clang (scripts/install-deps.sh)")
    if announce:
        logging.getLogger(__name__).warning(
            "compiling the BPF objects (%d variants, about 10 s; once per source change) "
            "into %s", len(ALL_VARIANTS), out_dir)  # fmt: skip
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        staging = Path(tmp)
        built = [compile_variant(v, staging, clang) for v in ALL_VARIANTS]
        (staging / STAMP).write_text(sources_digest() + "\n")
        out_dir.mkdir(exist_ok=True)
        for path in [*built, staging / STAMP]:
            os.replace(path, out_dir / path.name)
    return [out_dir / p.name for p in built]


def _is_current(directory: Path) -> bool:
    stamp = directory / STAMP
    try:
        return stamp.read_text().strip() == sources_digest()
    except OSError:
        return False


#: Names a directory of prebuilt objects to use first (the kernel matrix
#: points its guests at the host's, so no guest compiles under emulation).
OBJECTS_ENV = "LIBTRACE_BPF_DIR"


def object_dir() -> Path:
    """The directory of up-to-date objects, compiling them if needed."""
    given = os.environ.get(OBJECTS_ENV)
    if given and _is_current(Path(given)):
        return Path(given)
    if _is_current(PACKAGED_DIR):
        return PACKAGED_DIR
    cache = CACHE_ROOT / sources_digest()[:16]
    if not _is_current(cache):
        build(cache, announce=True)
    return cache


def object_path(variant: Variant) -> Path:
    return object_dir() / variant.object_name


if __name__ == "__main__":  # pragma: no cover - manual use
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else PACKAGED_DIR
    for path in build(target):
        print(path)

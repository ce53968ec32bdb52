"""The compiled hot paths (small C modules), where this machine can have them.

Two C modules are the compiled forms of Python code that runs per event:
``libtrace/tracer/_ringdecode.c`` drains the kernel's buffers into events, and
``libtrace/parsers/_respscan.c`` reads the common Redis messages.  A wheel
built with a C compiler carries both; a source checkout compiles each on
first use into the cache (as the BPF objects are, keyed by a digest of the
sources and the interpreter), and a machine without a compiler or Python's
headers keeps the pure-Python path, which stays complete and tested.
``LIBTRACE_PURE_PYTHON=1`` forces the pure-Python paths (for comparisons and
for their own tests).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.machinery
import importlib.util
import logging
import os
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

_PACKAGE = Path(__file__).parent


@dataclass(frozen=True)
class NativeModule:
    """A C module of the package: its import name, its source, the headers it includes."""

    name: str
    source: Path
    headers: tuple[Path, ...] = ()


RINGDECODE = NativeModule(
    "libtrace.tracer._ringdecode",
    _PACKAGE / "tracer" / "_ringdecode.c",
    # the event layout the BPF programs write
    (_PACKAGE / "bpf" / "socket_trace.h",),
)
RESPSCAN = NativeModule("libtrace.parsers._respscan", _PACKAGE / "parsers" / "_respscan.c")

#: Set to a non-empty value other than "0": never use the compiled module.
PURE_PYTHON_ENV = "LIBTRACE_PURE_PYTHON"
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "libtrace" / "native"


def pure_python_forced() -> bool:
    return os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0")


def ringdecode() -> ModuleType | None:
    """The compiled ring decoder, or None where there is none."""
    return load(RINGDECODE)


def respscan() -> ModuleType | None:
    """The compiled Redis readers, or None where there are none."""
    return load(RESPSCAN)


@functools.cache
def load(native: NativeModule) -> ModuleType | None:
    """``native`` as the wheel carries it, else compiled into the cache, else
    None (see the module's docstring)."""
    if pure_python_forced():
        return None
    try:
        return importlib.import_module(native.name)
    except ImportError:
        pass
    if not all(path.exists() for path in (native.source, *native.headers)):
        return None
    try:
        return _load(native.name, _compile_in_cache(native))
    except (OSError, subprocess.CalledProcessError, ImportError) as exc:
        log.info("%s is unavailable (%s): the pure-Python path runs", native.name, exc)
        return None


def _compile_in_cache(native: NativeModule) -> Path:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    digest = hashlib.sha256(sys.version.encode() + suffix.encode())
    for path in (native.source, *native.headers):
        digest.update(path.read_bytes())
    stem = native.name.rpartition(".")[2]
    target = CACHE_ROOT / f"{stem}-{digest.hexdigest()[:16]}{suffix}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    compiler = (sysconfig.get_config_var("CC") or "cc").split()
    include = sysconfig.get_paths()["include"]
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staged = Path(tmp) / target.name
        subprocess.run(
            [*compiler, "-O2", "-fPIC", "-shared", "-Wall", f"-I{include}", str(native.source),
             "-o", str(staged)],
            check=True, capture_output=True,
        )  # fmt: skip
        staged.replace(target)  # atomic: a concurrent first use loads either copy
    return target


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

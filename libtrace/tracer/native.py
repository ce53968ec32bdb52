"""The compiled hot path (``_ringdecode.c``), where this machine can have it.

A wheel built with a C compiler carries ``libtrace.tracer._ringdecode``; a
source checkout compiles it on first use into the cache (as the BPF objects
are, keyed by a digest of the source and the interpreter), and a machine
without a compiler or Python's headers keeps the pure-Python path, which stays
complete and tested.  ``LIBTRACE_PURE_PYTHON=1`` forces the pure-Python path
(for comparisons and for its own tests).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("_ringdecode.c")
#: The header it includes: the event layout the BPF programs write.
HEADER = Path(__file__).parent.parent / "bpf" / "socket_trace.h"
MODULE = "libtrace.tracer._ringdecode"
#: Set to a non-empty value other than "0": never use the compiled module.
PURE_PYTHON_ENV = "LIBTRACE_PURE_PYTHON"
CACHE_ROOT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "libtrace" / "native"


def pure_python_forced() -> bool:
    return os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0")


@functools.cache
def ringdecode() -> ModuleType | None:
    """The compiled module, or None where there is none (see the module's docstring)."""
    if pure_python_forced():
        return None
    try:
        from . import _ringdecode  # type: ignore[attr-defined]  # built with the wheel
    except ImportError:
        pass
    else:
        module: ModuleType = _ringdecode
        return module
    if not (SOURCE.exists() and HEADER.exists()):
        return None
    try:
        return _load(_compile_in_cache())
    except (OSError, subprocess.CalledProcessError, ImportError) as exc:
        log.info("the compiled decoder is unavailable (%s): decoding in Python", exc)
        return None


def _compile_in_cache() -> Path:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    digest = hashlib.sha256(
        SOURCE.read_bytes() + HEADER.read_bytes() + sys.version.encode() + suffix.encode()
    )
    target = CACHE_ROOT / f"_ringdecode-{digest.hexdigest()[:16]}{suffix}"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    compiler = (sysconfig.get_config_var("CC") or "cc").split()
    include = sysconfig.get_paths()["include"]
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        staged = Path(tmp) / target.name
        subprocess.run(
            [*compiler, "-O2", "-fPIC", "-shared", "-Wall", f"-I{include}", str(SOURCE),
             "-o", str(staged)],
            check=True, capture_output=True,
        )  # fmt: skip
        staged.replace(target)  # atomic: a concurrent first use loads either copy
    return target


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(MODULE, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

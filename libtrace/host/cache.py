"""The host's cache directory for downloads and builds, and its file locks.

Every download and build the harness keeps (kernels, Go toolchains, Docker
images) lives under one directory: ``$LIBTRACE_CACHE_DIR`` when set, else
``libtrace`` under ``$XDG_CACHE_HOME`` or ``~/.cache``.  An entry is finished
when its :data:`MARKER` exists (written last, so an entry without it is a
crashed or interrupted one and is redone), and ``<entry>.lock`` is held with
``flock`` while an entry is checked or built, so parallel callers that need
the same entry make it once.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Moves every cache of :func:`cache_dir` (one variable moves every download).
CACHE_ENV = "LIBTRACE_CACHE_DIR"

#: Written last into a finished cache entry.
MARKER = ".libtrace-complete"


def user_cache_dir() -> Path:
    """``libtrace`` under ``$XDG_CACHE_HOME`` or ``~/.cache`` (``$LIBTRACE_CACHE_DIR`` aside)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "libtrace"


def cache_dir(name: str) -> Path:
    """``$LIBTRACE_CACHE_DIR/<name>`` when set, else ``<name>`` under :func:`user_cache_dir`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]) / name
    return user_cache_dir() / name


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` + ``.lock`` for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield

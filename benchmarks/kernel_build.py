"""Minutes to build a kernel from source per config, cold and cached (issue 8).

For each configuration (by default 5.10 minimal without and with BTF) it
reports:

* ``cold_min``: the compile from a configured-nothing state to the installed
  entry.  With ``--cold`` the build really runs now, in a scratch cache that
  shares only the apt lists and the unpacked source tree with the real one;
  without it, the figure is the one the build recorded in its cache marker
  when it was built (building it now if it is missing);
* ``cached_s``: a second ``build_kernel`` call that finds the entry (the apt
  list check included);
* ``source_unpack_s``: downloading and unpacking ``linux-source-*`` (only
  with ``--cold``, and only when the real cache did not hold it yet).

    python3 -m benchmarks.kernel_build [--source 5.10] [--cold] [--jobs 2] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from libtrace.host.apt import AptRoot
from libtrace.host.cache import MARKER
from libtrace.vm._cache import entry_key
from libtrace.vm.build import BuildRequest, _choose_source, build_kernel, built_dir, source_tree
from libtrace.vm.kernels import default_cache_dir

from ._common import emit, log

#: The configurations measured: (label, --config, --disable).
CONFIGS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("minimal-nobtf", "minimal", ("btf",)),
    ("minimal-btf", "minimal", ()),
)


def _scratch_cache(real: Path, scratch: Path) -> None:
    """A cache that shares the apt lists and unpacked sources, and nothing built."""
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "apt").symlink_to(real / "apt")
    (scratch / "built").mkdir()
    (scratch / "built" / "src").symlink_to(built_dir(real) / "src")


def _ensure_source(source: str, cache: Path) -> float | None:
    """Unpack the source tree into the real cache; seconds taken, None if it was there."""
    request = BuildRequest(source=source)
    series, point = request.series()
    apt = AptRoot(cache / "apt")
    apt.update(progress=log)
    chosen = _choose_source(apt, series, point)
    key = built_dir(cache) / "src" / entry_key(chosen.name, chosen.version)
    if (key / MARKER).is_file():
        return None
    start = time.monotonic()
    source_tree(apt, chosen, cache, log)
    return time.monotonic() - start


def measure(
    source: str, label: str, config: str, disable: tuple[str, ...], cache: Path, jobs: int
) -> dict[str, Any]:
    request = BuildRequest(source=source, config=config, disable=disable, jobs=jobs)
    start = time.monotonic()
    built = build_kernel(request, cache_dir=cache, progress=log)
    first_s = time.monotonic() - start
    start = time.monotonic()
    again = build_kernel(request, cache_dir=cache)
    cached_s = time.monotonic() - start
    assert again.cached and again.entry == built.entry
    cold_s = built.build_s if built.build_s else first_s
    log(f"{label}: cold {cold_s / 60:.2f} min, cached {cached_s:.2f} s")
    return {
        "name": built.name,
        "release": built.release,
        "package_version": built.version,
        "btf": built.btf,
        "built_now": not built.cached,
        "cold_min": round(cold_s / 60, 2),
        "cached_s": round(cached_s, 2),
        "image_mb": round(built.vmlinuz.stat().st_size / 1e6, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="5.10")
    parser.add_argument("--cold", action="store_true", help="really rebuild, in a scratch cache")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true", help="only the first config")
    args = parser.parse_args()
    configs = CONFIGS[:1] if args.quick else CONFIGS
    real = default_cache_dir()
    results: dict[str, Any] = {}
    unpack_s = None
    if args.cold:
        with tempfile.TemporaryDirectory(prefix="libtrace-kbuild-", dir=real.parent) as tmp:
            unpack_s = _ensure_source(args.source, real)
            scratch = Path(tmp) / "kernels"
            _scratch_cache(real, scratch)
            for label, config, disable in configs:
                results[label] = measure(args.source, label, config, disable, scratch, args.jobs)
            shutil.rmtree(scratch, ignore_errors=True)
    else:
        for label, config, disable in configs:
            results[label] = measure(args.source, label, config, disable, real, args.jobs)
    emit(
        {
            "benchmark": "kernel_build",
            "source": args.source,
            "jobs": args.jobs,
            "cpus": os.cpu_count(),
            "loadavg_1m": os.getloadavg()[0],
            "mode": "cold rebuild now" if args.cold else "cold as recorded at build time",
            "source_unpack_s": round(unpack_s, 1) if unpack_s is not None else None,
            "configs": results,
        }
    )


if __name__ == "__main__":
    main()
